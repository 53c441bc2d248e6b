// The real postwatch-sim binary playing short scenario files against a real Mosquitto
// and the real aggregator; everything is checked through the aggregator's HTTP API.
#include "support/aggregator_process.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <fstream>
#include <regex>

using namespace postwatch::test;
using namespace std::chrono_literals;

namespace {

std::string sim_binary() { return (binary_dir() / "tools" / "simulator" / "postwatch-sim").string(); }

std::filesystem::path write_file(const TempDir& dir, const std::string& name, const std::string& text) {
  auto path = dir.path() / name;
  std::ofstream(path) << text;
  return path;
}

// Whether the aggregator shows `post` silent; empty when it does not answer.
std::optional<bool> post_silent(AggregatorProcess& agg, const std::string& post) {
  auto j = agg.get("/api/v1/posts/" + post);
  if (!j.is_object() || !j.contains("silent")) return std::nullopt;
  return j["silent"].get<bool>();
}

// Bamako's terrorism threat goes red (goal 7) at 3 s; Kyiv goes silent at 5 s for 4 s.
// No random episodes and no standing concerns, so every goal starts green.
const char* kEscalateAndSilence = R"({
  "name": "escalate-and-silence",
  "description": "integration test: one escalation, one silent post",
  "posts": ["bamako", "kyiv"],
  "background_episodes": false,
  "standing_concerns": false,
  "steps": [
    {"at_s": 3, "action": "escalate", "posts": ["bamako"], "indicators": ["terrorism_threat_level"],
     "level": "red", "duration_s": 120, "note": "Attack reported."},
    {"at_s": 5, "action": "silence", "posts": ["kyiv"], "duration_s": 4}
  ]
})";

}  // namespace

// In-process agents, and the same scenario with each agent a postwatch-agent process.
class SimScenario : public ::testing::TestWithParam<bool> {};

TEST_P(SimScenario, EscalationTurnsGoalRedAndSilencedPostComesBack) {
  const bool processes = GetParam();
  MosquittoBroker broker;
  TempDir dir;
  AggregatorProcess agg(broker, dir);
  auto scenario = write_file(dir, "scenario.json", kEscalateAndSilence);
  std::vector<std::string> args = {sim_binary(), "--broker", broker.uri(), "--scenario", scenario.string(),
                                   "--rate",     "5",        "--seed",     "7"};
  if (processes) args.insert(args.end(), {"--processes", "--work-dir", (dir.path() / "agents").string()});
  ChildProcess sim(args, dir.path() / "sim.log");

  // Both posts reporting, nothing raised yet: goal 7 green.
  ASSERT_TRUE(wait_until([&] { return agg.goal_status(7) == "green" || !sim.running(); }, 15s)) << sim.log();
  ASSERT_TRUE(sim.running()) << sim.log();

  // (a) The escalation turns goal 7 (counter-terrorism) red, through terrorism_threat_level at Bamako.
  ASSERT_TRUE(wait_until([&] { return agg.goal_status(7) == "red"; }, 15s))
      << "goal 7 is " << agg.goal_status(7) << "\n"
      << sim.log();
  auto bamako = agg.get("/api/v1/posts/bamako");
  bool indicator_red = false;
  for (const auto& ind : bamako["indicators"])
    if (ind["id"] == "terrorism_threat_level") indicator_red = ind["status"] == "red";
  EXPECT_TRUE(indicator_red) << bamako.dump(2);

  // (b) Kyiv's uplink is cut: the broker publishes its last will, the aggregator shows it silent ...
  ASSERT_TRUE(wait_until([&] { return post_silent(agg, "kyiv") == true; }, 15s)) << sim.log();
  EXPECT_EQ(post_silent(agg, "bamako"), false);
  // ... and once the link is back the agent reconnects (after its backoff) and announces itself again.
  ASSERT_TRUE(wait_until([&] { return post_silent(agg, "kyiv") == false; }, 20s)) << sim.log();

  auto log = sim.log();
  EXPECT_NE(log.find("scenario step 0 (escalate) starts"), std::string::npos) << log;
  EXPECT_NE(log.find("scenario step 1 (silence) starts"), std::string::npos) << log;
  EXPECT_NE(log.find("scenario step 1 (silence) ends"), std::string::npos) << log;

  sim.signal(SIGINT);
  EXPECT_EQ(sim.wait(15s), 0) << sim.log();
  if (processes) {
    EXPECT_NE(sim.log().find("started 2 postwatch-agent processes"), std::string::npos) << sim.log();
    EXPECT_TRUE(std::filesystem::exists(dir.path() / "agents")) << "a given --work-dir is kept";
  }
}

INSTANTIATE_TEST_SUITE_P(Agents, SimScenario, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Processes" : "InProcess"; });

// Without broker commands an outage cuts every uplink; the agents keep spooling and,
// once the links are back, deliver every event: the aggregator gets all the simulator accepted.
TEST(SimScenarioOutage, UplinkOutageLosesNothing) {
  MosquittoBroker broker;
  TempDir dir;
  AggregatorProcess agg(broker, dir);
  auto scenario = write_file(dir, "outage.json", R"({
    "name": "short-outage", "description": "integration test: a 3 s outage",
    "posts": ["bamako", "kyiv", "tokyo"], "background_episodes": false,
    "steps": [{"at_s": 2, "action": "broker_outage", "duration_s": 3}]
  })");
  ChildProcess sim({sim_binary(), "--broker", broker.uri(), "--scenario", scenario.string(), "--rate", "20",
                    "--duration", "14", "--quiet"},
                   dir.path() / "sim.log");
  ASSERT_EQ(sim.wait(30s), 0) << sim.log();
  auto log = sim.log();
  EXPECT_NE(log.find("every agent's uplink is cut for 3 s"), std::string::npos) << log;

  std::smatch m;
  ASSERT_TRUE(std::regex_search(
      log, m, std::regex(R"(done after [0-9.]+ s: events accepted (\d+) sent (\d+) confirmed (\d+) rejected 0\n)")))
      << log;
  auto accepted = std::stoull(m[1]);
  EXPECT_EQ(m[1], m[3]) << "every accepted event confirmed by the aggregator";
  EXPECT_GE(std::stoull(m[2]), accepted) << "and sent at least once";
  EXPECT_GT(accepted, 3u * 20 * 10) << "events kept coming during the outage";
  EXPECT_TRUE(wait_until([&] { return agg.events_accepted() == accepted; }, 10s))
      << "aggregator accepted " << agg.events_accepted() << " of " << accepted;
}

TEST(SimScenarioOptions, ListsScenariosAndRefusesWhatItCannotDo) {
  TempDir dir;
  ChildProcess list({sim_binary(), "--list-scenarios"}, dir.path() / "list.log");
  ASSERT_EQ(list.wait(10s), 0) << list.log();
  for (const char* name : {"baseline ", "sahel-escalation ", "cyber-wave ", "post-silent ", "broker-outage "})
    EXPECT_NE(list.log().find(name), std::string::npos) << list.log();

  ChildProcess unknown({sim_binary(), "--scenario", "no-such-scenario"}, dir.path() / "unknown.log");
  EXPECT_EQ(unknown.wait(10s), 2);
  EXPECT_NE(unknown.log().find("no scenario 'no-such-scenario'"), std::string::npos) << unknown.log();

  ChildProcess too_many({sim_binary(), "--processes", "--agents-per-post", "2"}, dir.path() / "many.log");
  EXPECT_EQ(too_many.wait(10s), 2);
  EXPECT_NE(too_many.log().find("284 is more than 200"), std::string::npos) << too_many.log();

  ChildProcess half({sim_binary(), "--broker-stop-cmd", "true"}, dir.path() / "half.log");
  EXPECT_EQ(half.wait(10s), 2);
  EXPECT_NE(half.log().find("give both --broker-stop-cmd and --broker-start-cmd"), std::string::npos) << half.log();

  ChildProcess enrol_alone({sim_binary(), "--enrol", "http://127.0.0.1:1"}, dir.path() / "enrol.log");
  EXPECT_EQ(enrol_alone.wait(10s), 2);
  EXPECT_NE(enrol_alone.log().find("give both --enrol and --enrol-token-file"), std::string::npos) << enrol_alone.log();
  ChildProcess keys_alone({sim_binary(), "--identity-dir", dir.path().string()}, dir.path() / "keys.log");
  EXPECT_EQ(keys_alone.wait(10s), 2);
  EXPECT_NE(keys_alone.log().find("--identity-dir is for --enrol"), std::string::npos) << keys_alone.log();

  // Cutting uplinks needs the plain-TCP relay: a TLS broker is refused at start, clearly.
  ChildProcess tls({sim_binary(), "--scenario", "post-silent", "--broker", "ssl://127.0.0.1:8883"},
                   dir.path() / "tls.log");
  EXPECT_EQ(tls.wait(10s), 2);
  EXPECT_NE(tls.log().find("needs a tcp:// or mqtt:// broker"), std::string::npos) << tls.log();
}

// What tools/run-demo runs by default (the baseline scenario, one agent at every post of the
// catalogue, 2 events/s each, delivery confirmation on), for 20 s: every event the agents
// accepted is confirmed by the aggregator before the simulator's drain ends, and the
// aggregator's MQTT client never refused a publish (tracker issue 13: 11 % were never
// confirmed, and confirmations and alarms failed with -12).
TEST(SimDemo, DefaultFleetEndsWithEveryEventConfirmed) {
  MosquittoBroker broker;
  TempDir dir;
  AggregatorProcess agg(broker, dir);
  // The default drain (10 s) in a release build. Under a sanitizer the aggregator runs several
  // times slower, and on a shared CI machine its backlog can outlast 10 s: there the property is
  // that every event is confirmed, not how fast.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  const std::string drain = "60";
#else
  const std::string drain = "10";
#endif
  ChildProcess sim({sim_binary(), "--broker", broker.uri(), "--duration", "20", "--drain", drain},
                   dir.path() / "sim.log");
  ASSERT_EQ(sim.wait(100s), 0) << sim.log();
  const std::string log = sim.log();
  std::smatch m;
  ASSERT_TRUE(std::regex_search(log, m,
                                std::regex(R"(done after [0-9.]+ s: events accepted (\d+) sent (\d+) confirmed (\d+) )"
                                           R"(rejected (\d+)(.*))")))
      << log;
  const auto accepted = std::stoull(m[1]), confirmed = std::stoull(m[3]);
  EXPECT_GT(accepted, 142u * 2 * 15) << log;  // the whole fleet ran
  EXPECT_EQ(confirmed, accepted) << log << "\naggregator:\n" << agg.process().log();
  EXPECT_EQ(m[4], "0") << log;
  EXPECT_EQ(log.find("never confirmed"), std::string::npos) << log;
  EXPECT_EQ(agg.events_accepted(), accepted);
  const std::string agg_log = agg.process().log();
  EXPECT_EQ(agg_log.find("No more messages can be buffered"), std::string::npos) << agg_log;
  auto stats = agg.get("/api/v1/stats");
  EXPECT_EQ(stats["outbound_dropped"]["overflow"], 0) << stats.dump(1);
}
