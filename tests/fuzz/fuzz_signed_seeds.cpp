// Writes the seed corpus of fuzz_signed_payload: a signed batch, birth, heartbeat, confirmation
// (also one announcing the aggregator's next key), enrolment request and answer, each signed
// with the keys the fuzzer knows (signed_fuzz_input.hpp), and an unsigned batch.
// Run: fuzz_signed_seeds <corpus dir> (tools/fuzz does, before fuzzing).
#include "postwatch/enrolment.hpp"
#include "postwatch/wire_codec.hpp"
#include "signed_fuzz_input.hpp"

#include <cstdio>
#include <filesystem>
#include <fstream>

using namespace postwatch;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus dir>\n", argv[0]);
    return 2;
  }
  std::filesystem::create_directories(argv[1]);
  auto write = [&](const char* name, const std::vector<std::uint8_t>& bytes) {
    std::ofstream(std::filesystem::path(argv[1]) / name, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  };
  const auto& agent = fuzz::fuzz_agent_key();
  const auto& aggregator = fuzz::fuzz_aggregator_key();
  EventBatch b{"a1", "bamako", 1, {}};
  b.events.push_back({1, 1, "terrorism_threat_level", ValueKind::Level, 3, "", "a note", {{"k", "v"}}});
  write("batch-signed", encode_batch(b, &agent));
  write("batch-unsigned", encode_batch(b));
  AgentState st;
  st.agent_id = "a1";
  st.post_id = "bamako";
  write("birth-signed", encode_agent_state(st, &agent));
  write("confirm-signed", encode_delivery_confirm({"a1", "bamako", 5, 1, 0}, &aggregator));
  // The aggregator's key rotation: a confirmation naming its next key and a retired one, and a
  // heartbeat listing the aggregator keys the agent trusts.
  DeliveryConfirm notice{"a1", "bamako", 5, 1, 0};
  const auto next_aggregator = SigningKey::from_seed(std::array<std::uint8_t, 32>{11});
  notice.next_key.assign(next_aggregator.public_key().begin(), next_aggregator.public_key().end());
  notice.retired_key_ids = {"0123456789abcdef"};
  write("confirm-rotation", encode_delivery_confirm(notice, &aggregator));
  st.aggregator_key_ids = {aggregator.key_id(), next_aggregator.key_id()};
  st.has_metrics = true;
  write("heartbeat-keys", encode_agent_state(st, &agent));
  EnrolRequest r;
  r.agent_id = "a1";
  r.post_id = "bamako";
  r.token_id = "0123456789abcdef";
  r.public_key = agent.public_key();
  write("enrol-request", encode_enrol_request(r, agent));
  // A rotation endorsed by the key the fuzz target holds in force: its accepted path.
  auto next = SigningKey::from_seed(std::array<std::uint8_t, 32>{9});
  EnrolRequest rot;
  rot.agent_id = "a1";
  rot.post_id = "bamako";
  rot.public_key = next.public_key();
  rot.endorsed_by = agent.key_id();
  rot.endorsement = endorse_rotation(agent, "bamako", "a1", next.public_key());
  write("rotation-request", encode_enrol_request(rot, next));
  EnrolReply reply;
  reply.agent_id = "a1";
  reply.post_id = "bamako";
  reply.token_id = r.token_id;
  reply.reason = "the token expired";
  write("enrol-reply", encode_enrol_reply(reply, aggregator));
  return 0;
}
