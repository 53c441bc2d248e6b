// Writes the seed corpus of fuzz_aggregator_ingest (ingest_fuzz_input.hpp): valid births,
// heartbeats and batches in the orders delivery meets (in order, mid-stream with a birth,
// holes refilled, duplicates, forgeries), so the fuzzer starts from messages that get past
// the verifier. Run: fuzz_ingest_seeds tests/fuzz/corpus/fuzz_aggregator_ingest
#include "ingest_fuzz_input.hpp"
#include "postwatch/wire_codec.hpp"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <initializer_list>

using namespace postwatch;
using postwatch::fuzz::append_record;
using postwatch::fuzz::FuzzChannel;

namespace {

std::vector<std::uint8_t> batch(const char* agent, std::initializer_list<std::uint64_t> seqs,
                                const char* post = "bamako") {
  EventBatch b{agent, post, 0, {}};
  for (auto s : seqs) {
    IndicatorEvent e{s, fuzz::kFuzzClockStartMs, "terrorism_threat_level", ValueKind::Level, 3, "", "", {}};
    if (s % 3 == 0) e.indicator = "cyber_incidents", e.kind = ValueKind::Count, e.number = 2;
    if (s % 7 == 0) e.indicator = "no_such_indicator";  // refused per event, its seq settled
    b.events.push_back(e);
  }
  return encode_batch(b);
}

std::vector<std::uint8_t> state(bool online, std::uint64_t first_unacked, bool awaits = true) {
  AgentState st;
  st.agent_id = "a1";
  st.post_id = "bamako";
  st.online = online;
  st.at_ms = fuzz::kFuzzClockStartMs;
  st.first_unacked_seq = first_unacked;
  st.awaits_confirmation = awaits;
  return encode_agent_state(st);
}

std::vector<std::uint8_t> heartbeat(std::uint64_t sent, std::uint64_t confirmed, std::uint64_t held_from = 0) {
  AgentState st;
  st.agent_id = "a1";
  st.post_id = "bamako";
  st.at_ms = fuzz::kFuzzClockStartMs;
  st.has_metrics = true;
  st.metrics.sent_through_seq = sent;
  st.metrics.confirmed_through_seq = confirmed;
  st.metrics.held_from_seq = held_from;
  return encode_agent_state(st);
}

const std::vector<std::uint8_t> caught_up_all{1, 255}, behind_half{0, 128};

}  // namespace

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
  std::vector<std::uint8_t> in_order;
  append_record(in_order, FuzzChannel::StateA1, state(true, 1));
  append_record(in_order, FuzzChannel::EventsA1, batch("a1", {1, 2, 3, 4, 5}));
  append_record(in_order, FuzzChannel::EventsA2, batch("a2", {1, 2, 3}));
  append_record(in_order, FuzzChannel::Tick, behind_half);
  append_record(in_order, FuzzChannel::EventsA1, batch("a1", {6, 7, 8, 9, 10}));
  append_record(in_order, FuzzChannel::Tick, caught_up_all);
  append_record(in_order, FuzzChannel::HeartbeatA1, heartbeat(10, 5));
  append_record(in_order, FuzzChannel::Tick, caught_up_all);
  write("in-order", in_order);

  std::vector<std::uint8_t> holes;
  append_record(holes, FuzzChannel::EventsA1, batch("a1", {1, 2, 3}));
  append_record(holes, FuzzChannel::EventsA1, batch("a1", {8, 9, 10}));
  append_record(holes, FuzzChannel::Tick, caught_up_all);
  append_record(holes, FuzzChannel::Tick, caught_up_all);                     // a hole a tick old: a resend request
  append_record(holes, FuzzChannel::EventsA1, batch("a1", {4, 5, 6, 7, 8}));  // refilled, 8 twice
  append_record(holes, FuzzChannel::HeartbeatA1, heartbeat(10, 3));
  append_record(holes, FuzzChannel::HeartbeatA1, heartbeat(12, 3));
  append_record(holes, FuzzChannel::Tick, caught_up_all);
  write("holes-refilled", holes);

  std::vector<std::uint8_t> mid;
  append_record(mid, FuzzChannel::EventsA1, batch("a1", {1000, 1001, 1002}));
  append_record(mid, FuzzChannel::Tick, caught_up_all);  // unanchored: nothing confirmed
  append_record(mid, FuzzChannel::StateA1, state(true, 990));
  append_record(mid, FuzzChannel::Tick, caught_up_all);
  append_record(mid, FuzzChannel::EventsA1, batch("a1", {990, 991, 992, 993, 994, 995, 996, 997, 998, 999}));
  append_record(mid, FuzzChannel::Tick, caught_up_all);
  append_record(mid, FuzzChannel::StateA1, state(false, 1003));
  write("mid-stream-birth", mid);

  std::vector<std::uint8_t> puback;
  append_record(puback, FuzzChannel::StateA1, state(true, 500, false));
  append_record(puback, FuzzChannel::EventsA1, batch("a1", {500, 501}));
  append_record(puback, FuzzChannel::HeartbeatA1, heartbeat(501, 0));
  append_record(puback, FuzzChannel::Tick, caught_up_all);
  write("releases-on-puback", puback);

  std::vector<std::uint8_t> dropped;  // the agent's overflow policy dropped 4..7 it never sent
  append_record(dropped, FuzzChannel::StateA1, state(true, 1));
  append_record(dropped, FuzzChannel::EventsA1, batch("a1", {1, 2, 3}));
  append_record(dropped, FuzzChannel::EventsA1, batch("a1", {8, 9, 10}));
  append_record(dropped, FuzzChannel::Tick, caught_up_all);
  append_record(dropped, FuzzChannel::HeartbeatA1, heartbeat(10, 3, 8));
  append_record(dropped, FuzzChannel::Tick, caught_up_all);         // 4..7 given up as gaps, 1..10 confirmed
  append_record(dropped, FuzzChannel::EventsA1, batch("a1", {5}));  // late: a duplicate now
  append_record(dropped, FuzzChannel::Tick, caught_up_all);
  write("dropped-by-the-agent", dropped);

  std::vector<std::uint8_t> forged;
  append_record(forged, FuzzChannel::EventsOtherPost, batch("a1", {1, 2}));  // bamako's payload on kabul's topic
  append_record(forged, FuzzChannel::EventsWrongRegion, batch("a1", {1, 2}));
  append_record(forged, FuzzChannel::EventsOtherPost, batch("a1", {1, 2}, "kabul"));
  append_record(forged, FuzzChannel::NotAnAgentTopic, batch("a1", {1}));
  append_record(forged, FuzzChannel::EventsA1, {0x10, 0, 0, 0, 'P', 'W', 'E', '1'});  // identifier only
  append_record(forged, FuzzChannel::Tick, caught_up_all);
  write("forged-and-malformed", forged);
  return 0;
}
