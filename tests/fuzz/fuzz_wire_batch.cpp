// libFuzzer: the aggregator's payload decoding and verification, the agent-state decoder, and
// the delivery-confirmation decoder the agent runs on what arrives on its confirm topic.
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
  postwatch::DeliveryConfirm confirm;
  if (postwatch::decode_delivery_confirm({data, size}, confirm) == postwatch::DecodeError::None &&
      confirm.agent_id.size() + confirm.post_id.size() == static_cast<std::size_t>(-1))
    return 1;
  return 0;
}
