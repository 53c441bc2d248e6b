// Fleets of live agents with delivery confirmation on: the real agent code in this process,
// a real Mosquitto and the real postwatch-aggregator. Everything the agents accept must be
// confirmed, with no publish the aggregator's MQTT client refused (-12) and nothing its
// outbound path reports dropped, even with the outbound window made tiny.
#include "postwatch/agent/agent.hpp"
#include "postwatch/agent/memory_backlog.hpp"
#include "postwatch/catalogue.hpp"
#include "support/aggregator_process.hpp"
#include "support/loopback_agent_config.hpp"
#include "support/mqtt_probe.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <sys/resource.h>

#include <unistd.h>
#include <csignal>

#include <condition_variable>
#include <mutex>
#include <sstream>
#include <thread>

using namespace postwatch;
using namespace postwatch::test;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

// A fleet of in-process agents, one or more per post, all logging to one buffer.
class Fleet {
 public:
  Fleet(const std::string& broker_uri, std::size_t count)
      : catalogue_(std::make_shared<const IndicatorCatalogue>(IndicatorCatalogue::load(catalogue_path()))),
        sink_(std::make_shared<spdlog::sinks::ostream_sink_mt>(log_)) {
    rlimit rl{};  // a socket per agent
    if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
      rl.rlim_cur = rl.rlim_max;
      ::setrlimit(RLIMIT_NOFILE, &rl);
    }
    for (std::size_t i = 0; i < count; ++i) {
      auto c = loopback_agent_config(broker_uri, "fleet-" + std::to_string(i),
                                     catalogue_->posts()[i % catalogue_->posts().size()].id);
      c.catalogue_file = catalogue_path();
      c.batch_max_delay = 100ms;
      auto log = std::make_shared<spdlog::logger>(c.agent_id, sink_);
      log->set_level(spdlog::level::warn);
      agents_.push_back(std::make_unique<agent::Agent>(std::move(c), catalogue_,
                                                       std::make_unique<agent::MemoryBacklog>(10'000), log));
    }
    for (auto& a : agents_) a->start();
  }
  ~Fleet() {
    // Each stop is a broker round trip: side by side.
    std::vector<std::thread> stops;
    for (auto& a : agents_) stops.emplace_back([&a] { a->stop(); });
    for (auto& t : stops) t.join();
  }

  bool wait_connected(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (auto& a : agents_)
      while (!a->wait_until_connected(100ms))
        if (std::chrono::steady_clock::now() > deadline) return false;
    return true;
  }
  // Whether every agent's backlog emptied (every event confirmed) by the deadline.
  bool wait_drained(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (auto& a : agents_) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (!a->wait_until_drained(std::max(left, 1ms))) return false;
    }
    return true;
  }
  agent::SubmitResult submit(std::size_t agent, const std::string& indicator, double value) {
    IndicatorEvent e;
    e.indicator = indicator;
    e.kind = ValueKind::Level;
    e.number = value;
    return agents_[agent]->submit(e);
  }
  std::size_t size() const { return agents_.size(); }
  agent::Agent& operator[](std::size_t i) { return *agents_[i]; }
  std::string log() const { return log_.str(); }
  const IndicatorCatalogue& catalogue() const { return *catalogue_; }

 private:
  std::shared_ptr<const IndicatorCatalogue> catalogue_;
  std::ostringstream log_;
  std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink_;
  std::vector<std::unique_ptr<agent::Agent>> agents_;
};

// Sums over the agents, and which ones still hold events.
struct FleetTotals {
  std::uint64_t accepted = 0, confirmed = 0, backlog = 0;
  std::vector<std::string> holding;
};
FleetTotals totals(Fleet& fleet) {
  FleetTotals t;
  for (std::size_t i = 0; i < fleet.size(); ++i) {
    auto s = fleet[i].stats();
    t.accepted += s.accepted;
    t.confirmed += s.confirmed;
    t.backlog += s.backlog.events;
    if (s.backlog.events > 0 && t.holding.size() < 10)
      t.holding.push_back(fleet[i].config().agent_id + " holds " + std::to_string(s.backlog.events) +
                          " (confirmed through " + std::to_string(s.confirmed_through_seq) + ")");
  }
  return t;
}

std::string describe(const FleetTotals& t) {
  std::string s = "accepted " + std::to_string(t.accepted) + ", confirmed " + std::to_string(t.confirmed) +
                  ", backlog " + std::to_string(t.backlog);
  for (const auto& h : t.holding) s += "\n  " + h;
  return s;
}

void expect_nothing_dropped(AggregatorProcess& agg) {
  auto stats = agg.get("/api/v1/stats");
  ASSERT_TRUE(stats.is_object());
  EXPECT_EQ(stats["outbound_dropped"]["overflow"], 0) << stats.dump(1);
  EXPECT_EQ(stats["outbound_dropped"]["shutdown"], 0) << stats.dump(1);
  const std::string log = agg.process().log();
  EXPECT_EQ(log.find("No more messages can be buffered"), std::string::npos) << log;
  EXPECT_EQ(log.find("[-12]"), std::string::npos) << log;
}

// The payloads the feed probe saw on `topic`, oldest first.
std::vector<json> json_on(MqttProbe& feed, const std::string& topic) {
  std::vector<json> out;
  for (const auto& p : feed.payloads_on(topic)) out.push_back(json::parse(p, nullptr, false));
  return out;
}

}  // namespace

TEST(Fleet, FiveHundredLiveAgentsHaveEveryEventConfirmed) {
  MosquittoBroker broker;
  TempDir dir;
  AggregatorProcess agg(broker, dir);
  Fleet fleet(broker.uri(), 500);
  ASSERT_TRUE(fleet.wait_connected(120s)) << fleet.log();

  // Four rounds over the whole fleet: 2 000 events, each agent's confirmations moving four times.
  constexpr int kRounds = 4;
  for (int round = 0; round < kRounds; ++round) {
    for (std::size_t i = 0; i < fleet.size(); ++i) {
      auto r = fleet.submit(i, "terrorism_threat_level", 1 + (round + i) % 2);
      ASSERT_TRUE(r.accepted) << r.error;
    }
    std::this_thread::sleep_for(200ms);  // paces the load; the waits below are on events
  }
  ASSERT_TRUE(fleet.wait_drained(90s)) << describe(totals(fleet)) << "\n" << agg.process().log();
  auto t = totals(fleet);
  EXPECT_EQ(t.accepted, 500u * kRounds);
  EXPECT_EQ(t.confirmed, t.accepted);
  EXPECT_EQ(t.backlog, 0u);
  EXPECT_EQ(agg.events_accepted(), 500u * kRounds);
  // At least one confirmation per agent went out (the broker's PUBACK to the aggregator may
  // come after the agent has the message).
  EXPECT_TRUE(wait_until(
      [&] {
        auto stats = agg.get("/api/v1/stats");
        return stats.is_object() && stats["outbound_published"]["confirm"].get<std::uint64_t>() >= 500u;
      },
      10s))
      << agg.get("/api/v1/stats").dump(1);
  expect_nothing_dropped(agg);

  // What was confirmed is in the store under the right agent: a restarted aggregator replays
  // exactly four events of each agent.
  agg.process().signal(SIGTERM);
  ASSERT_EQ(agg.process().wait(15s), 0) << agg.process().log();
  AggregatorProcess again(broker, dir);
  EXPECT_EQ(again.events_accepted(), 500u * kRounds);
  auto listed = again.get("/api/v1/agents");
  std::size_t with_four = 0;
  for (const auto& a : listed["agents"])
    if (a["events"].is_object() && a["events"]["received"] == kRounds) ++with_four;
  EXPECT_EQ(with_four, 500u) << listed.dump().substr(0, 2000);
}

TEST(Fleet, AnOutboundWindowOfOneStillDeliversConfirmationsAlarmsAndSnapshots) {
  MosquittoBroker broker;
  TempDir dir;
  AggregatorProcess agg(broker, dir, {"--outbound-window", "1"});
  // The operations-centre feed: alarms and the retained goal/pillar snapshots.
  MqttProbe feed(broker.uri(), "feed-watcher-" + std::to_string(::getpid()),
                 ProbeOptions().subscribe("postwatch/v1/feed/#"));
  Fleet fleet(broker.uri(), 60);
  ASSERT_TRUE(fleet.wait_connected(60s)) << fleet.log();

  // Every agent reports a green threat level; then Bamako's agent a red one: goal 7 goes red
  // and raises an alarm while 60 confirmations compete for the one slot.
  for (std::size_t i = 0; i < fleet.size(); ++i) ASSERT_TRUE(fleet.submit(i, "terrorism_threat_level", 1).accepted);
  std::size_t bamako = 0;
  for (std::size_t i = 0; i < fleet.size(); ++i)
    if (fleet[i].config().post_id == "bamako") bamako = i;
  ASSERT_TRUE(fleet.submit(bamako, "terrorism_threat_level", 4).accepted);
  for (std::size_t i = 0; i < fleet.size(); ++i) {  // Bamako's stays red: its reading of 4 is its latest
    if (i != bamako) {
      ASSERT_TRUE(fleet.submit(i, "terrorism_threat_level", 2).accepted);
    }
  }

  ASSERT_TRUE(fleet.wait_drained(60s)) << describe(totals(fleet)) << "\n" << agg.process().log();
  EXPECT_EQ(totals(fleet).confirmed, 2 * fleet.size());

  // The alarm and goal 7's red snapshot reach the feed.
  ASSERT_TRUE(wait_until(
      [&] {
        for (const auto& a : json_on(feed, "postwatch/v1/feed/alarms"))
          if (a.value("kind", "") == "goal" && a.value("goal", 0) == 7 && a.value("level", "") == "red") return true;
        return false;
      },
      30s))
      << agg.process().log();
  ASSERT_TRUE(wait_until(
      [&] {
        auto snaps = json_on(feed, "postwatch/v1/feed/goals/7");
        return !snaps.empty() && snaps.back().value("status", "") == "red";
      },
      30s))
      << agg.process().log();
  {
    auto red = json_on(feed, "postwatch/v1/feed/goals/7").back();
    ASSERT_TRUE(red["score"].is_number()) << red.dump();
    EXPECT_LE(red["score"].get<double>(), 30.0) << "red scores in the red band: " << red.dump();
  }
  auto stats = agg.get("/api/v1/stats");
  EXPECT_EQ(stats["outbound_window"], 1) << stats.dump(1);
  EXPECT_GE(stats["outbound_published"]["urgent"].get<std::uint64_t>(), 1u) << stats.dump(1);
  EXPECT_GE(stats["outbound_published"]["snapshot"].get<std::uint64_t>(), 1u) << stats.dump(1);
  expect_nothing_dropped(agg);
}
