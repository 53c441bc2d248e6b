// The whole path over a real broker: agent code → Mosquitto → the real
// aggregator binary → goal state over HTTP.
#include "postwatch/agent/agent.hpp"
#include "postwatch/agent/memory_backlog.hpp"
#include "support/aggregator_process.hpp"
#include "support/loopback_agent_config.hpp"
#include "support/mqtt_probe.hpp"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <fstream>
#include <regex>

using namespace postwatch;
using namespace postwatch::test;
using nlohmann::json;

namespace {

std::unique_ptr<agent::Agent> make_agent(const std::string& uri, const std::string& post, const std::string& id) {
  auto cfg = loopback_agent_config(uri, id, post);
  cfg.batch_max_delay = std::chrono::milliseconds(10);
  auto cat = std::make_shared<const IndicatorCatalogue>(IndicatorCatalogue::load(catalogue_path()));
  auto a =
      std::make_unique<agent::Agent>(cfg, cat, std::make_unique<agent::MemoryBacklog>(10000), spdlog::default_logger());
  a->start();
  return a;
}

IndicatorEvent level_event(double v, std::int64_t at = 0) {
  return IndicatorEvent{0, at, "terrorism_threat_level", ValueKind::Level, v, "", "", {}};
}

}  // namespace

class EndToEnd : public ::testing::Test {
 protected:
  TempDir dir;
  MosquittoBroker broker;
  AggregatorProcess aggregator{broker, dir};
};

TEST_F(EndToEnd, ServesThirteenGoalsInThreePillars) {
  auto goals = aggregator.get("/api/v1/goals");
  ASSERT_FALSE(goals.is_null());
  EXPECT_EQ(goals["goals"].size(), 13u);
  ASSERT_EQ(goals["pillars"].size(), 3u);
  EXPECT_EQ(goals["pillars"][0]["id"], "prevent");
  EXPECT_EQ(goals["pillars"][1]["goals"].size(), 6u);
  for (const auto& g : goals["goals"]) EXPECT_EQ(g["status"], "unknown");  // nothing reported yet
}

TEST_F(EndToEnd, AgentEventsChangeGoalStatus) {
  ASSERT_EQ(aggregator.goal_status(7), "unknown");
  auto agent = make_agent(broker.uri(), "bamako", "e2e-1");
  ASSERT_TRUE(agent->submit(level_event(5)).accepted);
  ASSERT_TRUE(agent->wait_until_drained(std::chrono::seconds(10)));
  EXPECT_TRUE(wait_until([&] { return aggregator.goal_status(7) == "red"; }, std::chrono::seconds(10)))
      << aggregator.goal_status(7);
  auto post = aggregator.get("/api/v1/posts/bamako");
  ASSERT_EQ(post["indicators"].size(), 1u);
  EXPECT_EQ(post["indicators"][0]["value"], 5.0);

  // A later observation brings the goal back to green.
  ASSERT_TRUE(agent->submit(level_event(1)).accepted);
  EXPECT_TRUE(wait_until([&] { return aggregator.goal_status(7) == "green"; }, std::chrono::seconds(10)));
  auto stats = aggregator.get("/api/v1/stats");
  EXPECT_EQ(stats["events_accepted"], 2);
  EXPECT_EQ(stats["events_duplicate"], 0);
}

TEST_F(EndToEnd, ManyEventsInBatchesAllArrive) {
  auto agent = make_agent(broker.uri(), "kabul", "e2e-2");
  const int n = 5000;
  for (int i = 0; i < n; ++i) ASSERT_TRUE(agent->submit(level_event(1 + i % 5, 1000 + i)).accepted);
  ASSERT_TRUE(agent->wait_until_drained(std::chrono::seconds(30)));
  EXPECT_LT(agent->stats().batches_sent, static_cast<std::uint64_t>(n) / 10);  // batched, not one per message
  EXPECT_TRUE(
      wait_until([&] { return aggregator.get("/api/v1/stats")["events_accepted"] == n; }, std::chrono::seconds(10)));
}

TEST_F(EndToEnd, AgentCommandLineEmitsOneEvent) {
  auto cfg = dir.path() / "agent.json";
  std::ofstream(cfg) << json{{"broker_uri", broker.uri()},
                             {"allow_plaintext", true},
                             {"agent_id", "cli-1"},
                             {"post_id", "caracas"},
                             {"catalogue_file", catalogue_path().string()}}
                            .dump();
  ChildProcess emit({(binary_dir() / "agent" / "postwatch-agent").string(), "emit", "--config", cfg.string(),
                     "--indicator", "conflict_early_warning_level", "--value", "4"},
                    dir.path() / "emit.log");
  ASSERT_EQ(emit.wait(std::chrono::seconds(20)), 0) << emit.log();
  EXPECT_TRUE(wait_until([&] { return aggregator.get("/api/v1/posts/caracas")["indicators"].size() == 1; },
                         std::chrono::seconds(10)));
  // A one-shot sender: it has left (death), and its post is not silent for it.
  ASSERT_TRUE(wait_until(
      [&] {
        auto a = aggregator.get("/api/v1/agents/caracas/cli-1");
        return a.is_object() && a.value("one_shot", false) && !a.value("online", true);
      },
      std::chrono::seconds(10)))
      << aggregator.get("/api/v1/agents/caracas/cli-1").dump();
  EXPECT_EQ(aggregator.get("/api/v1/posts/caracas")["silent"], false);
  const auto alarms = aggregator.get("/api/v1/alarms");  // kept: a range-for over a temporary's member dangles
  for (const auto& a : alarms["alarms"]) EXPECT_FALSE(a["kind"] == "post_silent" && a["post"] == "caracas") << a.dump();

  // One that promised to come back every second: its post goes silent once three are missed.
  ChildProcess cron({(binary_dir() / "agent" / "postwatch-agent").string(), "emit", "--config", cfg.string(),
                     "--indicator", "conflict_early_warning_level", "--value", "3", "--expect-every-s", "1"},
                    dir.path() / "cron.log");
  ASSERT_EQ(cron.wait(std::chrono::seconds(20)), 0) << cron.log();
  EXPECT_TRUE(
      wait_until([&] { return aggregator.get("/api/v1/posts/caracas")["silent"] == true; }, std::chrono::seconds(15)))
      << aggregator.get("/api/v1/posts/caracas").dump();

  ChildProcess bad({(binary_dir() / "agent" / "postwatch-agent").string(), "emit", "--config", cfg.string(),
                    "--indicator", "no_such_indicator", "--value", "4"},
                   dir.path() / "bad.log");
  EXPECT_EQ(bad.wait(std::chrono::seconds(20)), 1);
  EXPECT_NE(bad.log().find("unknown indicator 'no_such_indicator'"), std::string::npos) << bad.log();
}

TEST_F(EndToEnd, MalformedPayloadIsCountedAndLoggedAndServiceKeepsRunning) {
  const std::string topic = "postwatch/v1/sub-saharan-africa/bamako/evil/events";
  {
    MqttProbe raw(broker.uri(), "raw-publisher");
    raw.publish(topic, "this is not a flatbuffer");
    raw.publish(topic, "xxxxPWE1 but not really a batch at all");
  }
  EXPECT_TRUE(
      wait_until([&] { return aggregator.get("/api/v1/stats")["batches_rejected"] == 2; }, std::chrono::seconds(10)));
  auto stats = aggregator.get("/api/v1/stats");
  EXPECT_EQ(stats["batches_undecodable"]["wrong_identifier"], 1);
  EXPECT_EQ(stats["batches_undecodable"]["malformed"], 1);
  EXPECT_TRUE(aggregator.process().running());
  EXPECT_NE(aggregator.process().log().find("rejected message on '" + topic + "'"), std::string::npos);

  // Still serving and still ingesting.
  auto agent = make_agent(broker.uri(), "bamako", "e2e-3");
  ASSERT_TRUE(agent->submit(level_event(4)).accepted);
  EXPECT_TRUE(wait_until([&] { return aggregator.goal_status(7) == "red"; }, std::chrono::seconds(10)));
}

TEST_F(EndToEnd, StopsCleanlyOnSigterm) {
  aggregator.process().signal(SIGTERM);
  EXPECT_EQ(aggregator.process().wait(std::chrono::seconds(10)), 0) << aggregator.process().log();
  EXPECT_NE(aggregator.process().log().find("stopped"), std::string::npos);
}

// A broker that takes the TCP connection and never answers CONNECT (a host half up, a
// firewall eating replies): the aggregator's connect is in progress when systemd stops it, and
// Paho refuses to drop callbacks then. It once died of that (abort, exit 134); it must stop
// as cleanly as ever.
TEST(AggregatorStop, StopsCleanlyOnSigtermWhileItsBrokerConnectHangs) {
  TempDir dir;
  int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener, 8), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const std::string broker = "tcp://127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  ChildProcess agg(
      {(binary_dir() / "aggregator" / "postwatch-aggregator").string(), "--catalogue", catalogue_path().string(),
       "--data-dir", (dir.path() / "data").string(), "--http-port", "0", "--broker", broker},
      dir.path() / "aggregator.log");
  // The aggregator's connection arrives; nothing will ever answer its CONNECT.
  pollfd pfd{listener, POLLIN, 0};
  ASSERT_EQ(::poll(&pfd, 1, 10'000), 1) << agg.log();
  int conn = ::accept(listener, nullptr, nullptr);
  ASSERT_GE(conn, 0);
  agg.signal(SIGTERM);
  EXPECT_EQ(agg.wait(std::chrono::seconds(15)), 0) << agg.log();
  EXPECT_NE(agg.log().find("stopped"), std::string::npos) << agg.log();
  ::close(conn);
  ::close(listener);
}

// A catalogue whose strategy targets do not hold together stops the aggregator at start, with
// the file, the entry and the problem (docs/strategy-progress.md); agents skip that section.
TEST(AggregatorCli, ABadStrategyTargetStopsItAtStartNamingTheEntry) {
  TempDir dir;
  nlohmann::json cat;
  std::ifstream(catalogue_path()) >> cat;
  cat["targets"][0]["kind"] = "value";
  cat["targets"][0]["indicator"] = "defence_spending_share_gdp";
  auto file = dir.path() / "bad-targets.json";
  std::ofstream(file) << cat.dump();
  ChildProcess p({(binary_dir() / "aggregator" / "postwatch-aggregator").string(), "--catalogue", file.string(),
                  "--data-dir", (dir.path() / "data").string(), "--http-port", "0"},
                 dir.path() / "aggregator.log");
  EXPECT_EQ(p.wait(std::chrono::seconds(10)), 2) << p.log();
  EXPECT_NE(p.log().find("bad-targets.json: targets[0] '" + cat["targets"][0]["id"].get<std::string>() +
                         "': unknown indicator 'defence_spending_share_gdp'"),
            std::string::npos)
      << p.log();
}

// --help shows defaults as an operator would write them (it once printed 0.10000000000000001).
TEST(AggregatorCli, HelpShowsDefaultsAsWritten) {
  TempDir dir;
  ChildProcess help({(binary_dir() / "aggregator" / "postwatch-aggregator").string(), "--help"},
                    dir.path() / "help.log");
  ASSERT_EQ(help.wait(std::chrono::seconds(10)), 0) << help.log();
  const std::string text = help.log();
  EXPECT_NE(text.find("--hysteresis arg (=0.1)"), std::string::npos) << text;
  EXPECT_NE(text.find("--outbound-window arg (=256)"), std::string::npos) << text;
  std::smatch noisy;
  EXPECT_FALSE(std::regex_search(text, noisy, std::regex(R"(\(=-?[0-9]+\.[0-9]{6,}\))")))
      << "a default printed with float noise: " << noisy.str(0);
  // The default catalogue is where a package puts it, not a path into someone's checkout.
  EXPECT_NE(text.find("--catalogue FILE"), std::string::npos) << text;
  EXPECT_NE(text.find("/usr/share/postwatch/"), std::string::npos) << text;
  EXPECT_EQ(text.find(catalogue_path().parent_path().string()), std::string::npos) << text;
}
