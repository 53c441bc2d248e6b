// libFuzzer: the aggregator's whole path for what arrives over MQTT, without a broker:
// BatchIngest (verify, topic check, catalogue, dedupe), AgentPresence (birth, death,
// heartbeats) and DeliveryConfirmer (what it tells agents they may delete). Input format:
// ingest_fuzz_input.hpp. Beyond not crashing, it checks the promise an agent relies on when
// it deletes events:
//  - a confirmation never covers a seq whose event is not in the store — refused ones
//    (future, unknown indicator, bad value) included — unless the agent said it no longer
//    holds it (birth, heartbeat) or the window counted it as a gap;
//  - a confirmation never covers an event the store has not committed yet;
//  - every confirmation decodes, on the agent's own confirm topic;
//  - every new event is handed to the store: the accepted ones and the refused ones.
#include "ingest/agent_presence.hpp"
#include "ingest/batch_ingest.hpp"
#include "ingest/delivery_confirmer.hpp"
#include "ingest_fuzz_input.hpp"
#include "postwatch/topics.hpp"
#include "postwatch/wire_codec.hpp"

#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <iterator>
#include <map>
#include <set>
#include <vector>

using namespace postwatch;
using namespace postwatch::aggregator;
using postwatch::fuzz::FuzzChannel;

namespace {

[[noreturn]] void broken(const std::string& what) {
  std::fprintf(stderr, "aggregator ingest: %s\n", what.c_str());
  __builtin_trap();
}

const IndicatorCatalogue& catalogue() {
  static const auto cat = IndicatorCatalogue::load(POSTWATCH_FUZZ_CATALOGUE);
  return cat;
}

std::string topic_of(std::string_view post, std::string_view agent, topics::Channel ch, std::string_view region = {}) {
  const auto* p = catalogue().find_post(post);
  return topics::agent_topic(region.empty() ? p->region : std::string(region), post, agent, ch);
}

// What the harness knows of one agent, from outside the code under test.
struct AgentTruth {
  std::map<std::uint64_t, std::uint64_t> stored;  // seq -> its position in the store's queue
  std::uint64_t released = 0;                     // highest seq the agent said it no longer holds
};

class Harness : public EventSink {
 public:
  Harness() {
    for (auto [post, agent] : {std::pair{"bamako", "a1"}, {"bamako", "a2"}, {"kabul", "a1"}}) {
      const std::string key = std::string(post) + "/" + agent;
      truth_[key];
      confirm_topics_[topic_of(post, agent, topics::Channel::Confirm)] = key;
    }
  }

  void register_agent(std::uint32_t id, std::string_view post, std::string_view agent) override {
    names_[id] = std::string(post) + "/" + std::string(agent);
  }
  void persist(std::span<const PersistedEvent> events) override {
    for (const auto& e : events) {
      auto& t = truth_[names_.at(e.agent)];
      t.stored.emplace(e.seq, handed_over_);
      ++handed_over_;
    }
  }

  void feed(FuzzChannel ch, std::span<const std::uint8_t> bytes) {
    now_ += 50;
    switch (ch) {
      case FuzzChannel::EventsA1: events(topic_of("bamako", "a1", topics::Channel::Events), bytes); break;
      case FuzzChannel::EventsA2: events(topic_of("bamako", "a2", topics::Channel::Events), bytes); break;
      case FuzzChannel::EventsWrongRegion:
        events(topic_of("bamako", "a1", topics::Channel::Events, "asia"), bytes);
        break;
      case FuzzChannel::EventsOtherPost: events(topic_of("kabul", "a1", topics::Channel::Events), bytes); break;
      case FuzzChannel::NotAnAgentTopic: events("postwatch/v1/feed/goals/1", bytes); break;
      case FuzzChannel::StateA1: presence(topic_of("bamako", "a1", topics::Channel::State), bytes); break;
      case FuzzChannel::HeartbeatA1: presence(topic_of("bamako", "a1", topics::Channel::Heartbeat), bytes); break;
      default: tick(bytes); break;
    }
  }

 private:
  void events(const std::string& topic, std::span<const std::uint8_t> bytes) {
    const auto& c = ingest_.counters();
    auto refused = [&] { return c.events_future + c.events_unknown_indicator + c.events_bad_value; };
    const auto accepted_before = c.events_accepted, refused_before = refused();
    const auto handed_before = handed_over_;
    // Alternate prompt and possibly-delayed messages, so both clock paths run.
    const std::size_t applied = ingest_.on_message(topic, bytes, now_, (now_ / 50) % 2 == 0);
    if (c.events_accepted - accepted_before != applied) broken("applied != events_accepted");
    if (handed_over_ - handed_before != applied + (refused() - refused_before))
      broken("a new event, accepted or refused, was not handed to the store");
  }

  void presence(const std::string& topic, std::span<const std::uint8_t> bytes) {
    presence_.on_message(topic, bytes, now_);
    for (const auto& r : agents_) {
      if (!r.has_presence) continue;
      const auto& rec = r.presence;
      auto& t = truth_[agents_.key(r)];
      if (rec.births > 0 && rec.awaits_confirmation && rec.first_unacked_seq > 0)
        t.released = std::max(t.released, rec.first_unacked_seq - 1);
      if (rec.has_metrics) t.released = std::max(t.released, rec.metrics.confirmed_through_seq);
    }
  }

  void tick(std::span<const std::uint8_t> bytes) {
    now_ += 1000;
    const bool caught_up = bytes.empty() || (bytes[0] & 1);
    const std::uint64_t share = bytes.size() > 1 ? bytes[1] : 255;
    committed_ = std::max(committed_, handed_over_ * share / 255);  // a store only moves forward
    confirmer_.tick({handed_over_, committed_}, caught_up, now_);
  }

  bool publish(const std::string& topic, std::span<const std::uint8_t> payload) {
    auto it = confirm_topics_.find(topic);
    if (it == confirm_topics_.end()) broken("a confirmation on " + topic + ", not a known agent's confirm topic");
    DeliveryConfirm c;
    if (decode_delivery_confirm(payload, c) != DecodeError::None) broken("a confirmation that does not decode");
    if (c.post_id + "/" + c.agent_id != it->second) broken("a confirmation naming another agent than its topic");
    const AgentTruth& t = truth_[it->second];
    const auto* rec = agents_.find(it->second);
    const std::uint64_t gaps = rec && rec->has_events ? rec->events.seqs.gaps() : 0;
    if (c.through_seq > t.released) {
      const auto stored = static_cast<std::uint64_t>(
          std::distance(t.stored.upper_bound(t.released), t.stored.upper_bound(c.through_seq)));
      const std::uint64_t unstored = c.through_seq - t.released - stored;
      if (unstored > gaps)
        broken("confirmed through " + std::to_string(c.through_seq) + " with " + std::to_string(unstored) +
               " seq(s) not in the store and not released by the agent, but only " + std::to_string(gaps) +
               " counted as gaps");
    }
    for (auto s = t.stored.begin(); s != t.stored.end() && s->first <= c.through_seq; ++s)
      if (s->second >= committed_)
        broken("confirmed seq " + std::to_string(s->first) + " before the store committed it");
    return true;
  }

  std::shared_ptr<spdlog::logger> log_ =
      std::make_shared<spdlog::logger>("fuzz", std::make_shared<spdlog::sinks::null_sink_mt>());
  // One state for all runs: ingest only writes it, and building it (every post's windows)
  // would take most of each run.
  static IndicatorState& state() {
    static IndicatorState s{catalogue()};
    return s;
  }
  AgentTable agents_{catalogue()};
  BatchIngest ingest_{catalogue(), agents_, state(), log_, {}, this};
  AgentPresence presence_{catalogue(), agents_, log_};
  DeliveryConfirmer confirmer_{
      catalogue(), agents_, ingest_,
      [this](const std::string& topic, std::span<const std::uint8_t> p, bool) { return publish(topic, p); }};
  std::map<std::string, AgentTruth> truth_;
  std::map<std::uint32_t, std::string> names_;
  std::map<std::string, std::string> confirm_topics_;
  std::uint64_t handed_over_ = 0, committed_ = 0;
  std::int64_t now_ = fuzz::kFuzzClockStartMs;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Harness h;
  std::size_t i = 0;
  while (i + 3 <= size) {
    auto ch = static_cast<FuzzChannel>(data[i] % static_cast<std::uint8_t>(FuzzChannel::Count));
    std::size_t n = std::min<std::size_t>(data[i + 1] | (data[i + 2] << 8), size - i - 3);
    // A heap copy, as a message from Paho is: FlatBuffers reads scalars in place, so a
    // payload must start aligned (wire_codec.hpp).
    const std::vector<std::uint8_t> payload(data + i + 3, data + i + 3 + n);
    h.feed(ch, payload);
    i += 3 + n;
  }
  return 0;
}
