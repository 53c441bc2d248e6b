// libFuzzer: the signature-carrying decode path (docs/security.md). Every payload that decodes
// as a batch, an agent state, a confirmation, an enrolment request or answer has its signature
// located and checked, as the aggregator and the agent do: the offsets come from the input.
#include "postwatch/enrolment.hpp"
#include "postwatch/wire_codec.hpp"
#include "signed_fuzz_input.hpp"
#include "trust/agent_key_registry.hpp"
#include "trust/enrolment_desk.hpp"

#include <cstddef>
#include <cstdint>

using namespace postwatch;
using namespace postwatch::aggregator;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static AgentKeyRegistry keys = [] {
    AgentKeyRegistry r;
    const auto& k = fuzz::fuzz_agent_key();
    r.add({"bamako", "a1", k.key_id(), k.public_key(), 1, 0, "t"});
    return r;
  }();
  static EnrolmentDesk desk(std::vector<std::uint8_t>(32, 7), fuzz::fuzz_aggregator_key(), keys);
  std::span<const std::uint8_t> p{data, size};
  int verdicts = 0;
  BatchView v;
  if (decode_batch(p, v) == DecodeError::None)
    verdicts += static_cast<int>(keys.check(v.post_id, v.agent_id, v.key_id, p, v.signature_offset, 0));
  AgentState st;
  if (decode_agent_state(p, st) == DecodeError::None)
    verdicts += static_cast<int>(keys.check(st.post_id, st.agent_id, st.key_id, p, st.signature_offset, 0));
  DeliveryConfirm c;
  if (decode_delivery_confirm(p, c) == DecodeError::None && c.signature_offset != 0)
    verdicts += verify_payload(p, c.signature_offset, fuzz::fuzz_aggregator_key().public_key());
  EnrolRequest r;
  if (decode_enrol_request(p, r) == DecodeError::None) verdicts += desk.redeem(r, p, 2).reply.accepted;
  EnrolReply reply;
  if (decode_enrol_reply(p, reply) == DecodeError::None)
    verdicts += verify_payload(p, reply.signature_offset, fuzz::fuzz_aggregator_key().public_key());
  return verdicts < 0 ? 1 : 0;
}
