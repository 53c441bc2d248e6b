// libFuzzer: the aggregator's payload decoding and verification, and the agent-state decoder.
#include "postwatch/wire_codec.hpp"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  postwatch::BatchView view;
  if (postwatch::decode_batch({data, size}, view) == postwatch::DecodeError::None) {
    // Touch every view: out-of-bounds reads show up under ASan.
    std::size_t sum = view.agent_id.size() + view.post_id.size();
    for (const auto& e : view.events) sum += e.indicator.size() + e.text.size() + e.note.size();
    if (sum == static_cast<std::size_t>(-1)) return 1;
    postwatch::EventBatch owned;
    postwatch::decode_batch({data, size}, owned);
  }
  postwatch::AgentState state;
  postwatch::decode_agent_state({data, size}, state);
  return 0;
}
