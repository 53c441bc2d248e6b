// Fleet bundles on the real postwatch-agent against a real Mosquitto (docs/fleet.md): a
// signed bundle published retained is applied and reported in the birth and heartbeat; an
// unsigned one is refused; one whose inputs fail is rolled back by itself; a trial cut short
// by SIGKILL is rolled back at the next start and not tried again.
#include "postwatch/fleet_bundle.hpp"
#include "postwatch/wire_codec.hpp"
#include "support/agent_config_file.hpp"
#include "support/mqtt_probe.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <fstream>
#include <mutex>
#include <set>

using namespace postwatch;
using namespace postwatch::test;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// What the fleet-bundle tests read from the broker through the probe below.
ProbeOptions state_watch() {
  return ProbeOptions()
      .subscribe("postwatch/v1/+/+/+/state", 1)
      .subscribe("postwatch/v1/+/+/+/heartbeat", 0)
      .subscribe("postwatch/v1/+/+/+/events", 1);
}
// The agent's latest birth or heartbeat, decoded.
std::optional<AgentState> last_online_state(MqttProbe& watcher) {
  auto messages = watcher.messages();
  for (auto it = messages.rbegin(); it != messages.rend(); ++it) {
    if (it->topic.ends_with("/events")) continue;
    if (auto st = MqttProbe::decode_state(it->payload); st && st->online) return st;
  }
  return std::nullopt;
}
std::size_t heartbeats(MqttProbe& watcher) {
  std::size_t n = 0;
  for (const auto& m : watcher.messages())
    if (m.topic.ends_with("/heartbeat") && MqttProbe::decode_state(m.payload)) ++n;
  return n;
}
// The seqs of terrorism_threat_level readings that reached the broker.
std::size_t threat_readings(MqttProbe& watcher) {
  std::set<std::uint64_t> seqs;
  for (const auto& e : watcher.events())
    if (e.indicator == "terrorism_threat_level") seqs.insert(e.seq);
  return seqs.size();
}

class FleetBundleAgent : public ::testing::Test {
 protected:
  TempDir dir;
  MosquittoBroker broker;
  MqttProbe watcher{broker.uri(), "fleet-bundle-test-" + std::to_string(::getpid()), state_watch()};
  SigningKey fleet_key = SigningKey::from_seed({42});
  std::unique_ptr<ChildProcess> agent;
  fs::path config_file = dir.path() / "agent.json";
  int runs = 0;

  FleetBundleAgent() {
    std::ofstream(dir.path() / "fleet.pub") << "# the test's fleet key\n" << to_hex(fleet_key.public_key()) << "\n";
    AgentConfigFile(broker.uri(), "board-1", "bamako", dir.path() / "spool")
        .set("delivery", {{"confirm", "broker"}})  // no aggregator here
        .set("heartbeat_interval_s", 60)
        .set("fleet", {{"key_file", "fleet.pub"}, {"allow_scripts", true}})
        .write(config_file);
  }
  void start_agent() {
    agent =
        std::make_unique<ChildProcess>(std::vector<std::string>{(binary_dir() / "agent" / "postwatch-agent").string(),
                                                                "run", "--config", config_file.string()},
                                       dir.path() / ("agent-" + std::to_string(++runs) + ".log"), /*pipe_stdin=*/true);
  }
  std::string bundle(std::uint64_t version, const json& overlay, std::uint32_t deadline_s = 30) {
    FleetBundle b;
    b.version = version;
    b.config = overlay.dump();
    b.health_deadline_s = deadline_s;
    b.note = "test v" + std::to_string(version);
    return sign_bundle(b, fleet_key);
  }
  bool fleet_shows(const std::function<bool(const FleetReport&)>& pred, std::chrono::seconds timeout) {
    return wait_until(
        [&] {
          auto st = last_online_state(watcher);
          return st && st->has_fleet && pred(st->fleet);
        },
        timeout);
  }
  std::string logs() {
    std::string out;
    for (int i = 1; i <= runs; ++i) {
      std::ifstream in(dir.path() / ("agent-" + std::to_string(i) + ".log"));
      out += "--- run " + std::to_string(i) + "\n" + std::string(std::istreambuf_iterator<char>(in), {});
    }
    return out;
  }
};

TEST_F(FleetBundleAgent, ASignedBundleIsAppliedReportedAndAnUnsignedOneChangesNothing) {
  start_agent();
  ASSERT_TRUE(fleet_shows([](const FleetReport& f) { return f.config_bundle == 0; }, std::chrono::seconds(15)))
      << logs();
  auto status_of = [&] {
    auto j = json::parse(std::ifstream(dir.path() / "spool" / "status.json"), nullptr, false);
    return j.is_object() ? j : json::object();
  };
  for (int i = 0; i < 5; ++i)
    ASSERT_TRUE(agent->write_stdin(R"({"indicator": "terrorism_threat_level", "value": 2})"
                                   "\n"));
  ASSERT_TRUE(wait_until([&] { return status_of().value("events_sent", 0) == 5; }, std::chrono::seconds(10))) << logs();
  watcher.publish_retained(bundle_topic(BundleTarget{}), bundle(1, {{"heartbeat_interval_s", 1}}));
  ASSERT_TRUE(fleet_shows(
      [](const FleetReport& f) {
        return f.config_bundle == 1 && f.last_outcome == FleetReport::Outcome::Applied && f.applied == 1;
      },
      std::chrono::seconds(20)))
      << logs();
  // The new config is the one running: heartbeats every second.
  const auto before = heartbeats(watcher);
  EXPECT_TRUE(wait_until([&] { return heartbeats(watcher) >= before + 3; }, std::chrono::seconds(10))) << logs();
  EXPECT_EQ(last_online_state(watcher)->heartbeat_interval_s, 1u);

  // Unsigned, on the post's topic: refused and counted, nothing changes.
  auto forged = json::parse(bundle(2, {{"heartbeat_interval_s", 30}}));
  forged.erase("signature");
  watcher.publish_retained(bundle_topic(BundleTarget{BundleTarget::Scope::Post, "", "bamako", ""}), forged.dump());
  EXPECT_TRUE(fleet_shows([](const FleetReport& f) { return f.refused >= 1; }, std::chrono::seconds(10))) << logs();
  EXPECT_EQ(last_online_state(watcher)->fleet.config_bundle, 1u);
  EXPECT_NE(agent->log().find("refused a fleet bundle (unsigned)"), std::string::npos) << logs();
  auto status = status_of();
  EXPECT_EQ(status["fleet"]["config_bundle"], 1) << status.dump();
  // Its counts go on from the process's start across the switch (postwatch-agent status, the
  // simulator's drain), not from the new config's.
  EXPECT_EQ(status["events_accepted"], 5) << status.dump();
  EXPECT_EQ(status["events_sent"], 5) << status.dump();
}

TEST_F(FleetBundleAgent, ABundleWhoseInputFailsIsRolledBackByItselfAndATrialCutShortAtTheNextStart) {
  start_agent();
  watcher.publish_retained(bundle_topic(BundleTarget{}), bundle(1, {{"heartbeat_interval_s", 1}}));
  ASSERT_TRUE(fleet_shows([](const FleetReport& f) { return f.config_bundle == 1 && f.applied == 1; },
                          std::chrono::seconds(20)))
      << logs();

  // v2 adds a script probe that fails: no health within its 10 s, so back to v1.
  json failing{{"heartbeat_interval_s", 1},
               {"scripts", {{{"indicator", "agent_cpu_percent"}, {"command", {"/bin/false"}}, {"interval_s", 60}}}}};
  const auto agent_topic = bundle_topic(BundleTarget{BundleTarget::Scope::Agent, "", "bamako", "board-1"});
  watcher.publish_retained(agent_topic, bundle(2, failing, 10));
  ASSERT_TRUE(fleet_shows([](const FleetReport& f) { return f.last_outcome == FleetReport::Outcome::OnTrial; },
                          std::chrono::seconds(10)))
      << logs();
  ASSERT_TRUE(fleet_shows(
      [](const FleetReport& f) { return f.last_outcome == FleetReport::Outcome::RolledBack && f.last_version == 2; },
      std::chrono::seconds(25)))
      << logs();
  auto f = last_online_state(watcher)->fleet;
  EXPECT_EQ(f.config_bundle, 1u);
  EXPECT_EQ(f.rolled_back, 1u);
  EXPECT_NE(f.last_reason.find("script probe"), std::string::npos) << f.last_reason;

  // v3 goes on trial and the agent is killed before it is judged: the next start rolls it back.
  watcher.publish_retained(agent_topic, bundle(3, failing, 60));
  ASSERT_TRUE(fleet_shows(
      [](const FleetReport& f) { return f.last_outcome == FleetReport::Outcome::OnTrial && f.last_version == 3; },
      std::chrono::seconds(10)))
      << logs();
  // Readings taken during the trial are in the spool when it is killed, and go out after it.
  auto accepted = [&] {
    std::ifstream in(dir.path() / "spool" / "status.json");
    auto j = json::parse(in, nullptr, false);
    return j.is_object() ? j.value("events_accepted", 0) : 0;
  };
  const int before = accepted();  // the failing probe's own reports (agent_script_failures)
  for (int i = 0; i < 50; ++i)
    ASSERT_TRUE(agent->write_stdin(R"({"indicator": "terrorism_threat_level", "value": 3})"
                                   "\n"));
  ASSERT_TRUE(wait_until([&] { return accepted() >= before + 50; }, std::chrono::seconds(10))) << logs();
  agent->signal(SIGKILL);
  agent->wait(std::chrono::seconds(10));
  start_agent();
  ASSERT_TRUE(fleet_shows(
      [](const FleetReport& f) {
        return f.last_outcome == FleetReport::Outcome::RolledBack && f.last_version == 3 && f.config_bundle == 1;
      },
      std::chrono::seconds(20)))
      << logs();
  EXPECT_NE(last_online_state(watcher)->fleet.last_reason.find("stopped before"), std::string::npos)
      << last_online_state(watcher)->fleet.last_reason;
  // Its spool came through the kill: every reading reached the broker, before it or after.
  EXPECT_TRUE(wait_until([&] { return threat_readings(watcher) == 50; }, std::chrono::seconds(20)))
      << threat_readings(watcher) << "\n"
      << logs();
  // Its retained copy arrived again with the subscription and was not tried again.
  EXPECT_EQ(agent->log().find("switching to it"), std::string::npos) << logs();
}

}  // namespace
