// The agent's local inputs end to end: the real postwatch-agent (run + send) against a real
// Mosquitto, with a subscriber decoding every batch it publishes. Each test enables only the
// inputs it looks at, so every event on the wire is accounted for.
#include "postwatch/wire_codec.hpp"
#include "support/agent_config_file.hpp"
#include "support/mqtt_probe.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <map>
#include <mutex>

using namespace postwatch;
using namespace postwatch::test;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Each event once by seq, as the agent's subscriber kept them; how many arrived more than once.
std::vector<IndicatorEvent> events_of(MqttProbe& probe, const std::string& indicator) {
  std::vector<IndicatorEvent> out;
  for (auto& e : probe.distinct_events())
    if (e.indicator == indicator) out.push_back(e);
  return out;
}
std::size_t repeats(MqttProbe& probe) { return probe.events().size() - probe.distinct_events().size(); }

fs::path agent_binary() { return binary_dir() / "agent" / "postwatch-agent"; }

class AgentSources : public ::testing::Test {
 protected:
  TempDir dir;
  MosquittoBroker broker;
  // Every agent's events, decoded.
  MqttProbe recorder{broker.uri(), "agent-sources-test-" + std::to_string(::getpid()),
                     ProbeOptions().subscribe("postwatch/v1/+/+/+/events")};
  std::unique_ptr<ChildProcess> agent;
  fs::path config_file = dir.path() / "agent.json";
  fs::path socket = dir.path() / "run" / "agent.sock";
  fs::path drop = dir.path() / "drop";

  json base_config() {
    return AgentConfigFile(broker.uri(), "inputs", "bamako", dir.path() / "spool")
        .set("batch", {{"max_delay_ms", 10}})
        .set("delivery", {{"confirm", "broker"}})  // no aggregator here: the broker's PUBACK releases
        .json();
  }
  void start_agent(const json& config) {
    std::ofstream(config_file) << config.dump(2);
    // stdin stays open (piped, never written): the agent runs until the test ends.
    agent = std::make_unique<ChildProcess>(
        std::vector<std::string>{agent_binary().string(), "run", "--config", config_file.string()},
        dir.path() / "agent.log", /*pipe_stdin=*/true);
  }
  // `postwatch-agent send` with `request`; its exit status and printed answer.
  std::pair<int, json> send(const std::string& request) {
    static int n = 0;
    auto log = dir.path() / ("send-" + std::to_string(++n) + ".log");
    ChildProcess p({agent_binary().string(), "send", "--config", config_file.string(), request}, log);
    int rc = p.wait(std::chrono::seconds(30));
    auto text = p.log();
    auto first = text.substr(0, text.find('\n'));
    return {rc, json::parse(first, nullptr, false)};
  }
  void write_drop_file(const std::string& name, const std::string& text) {
    // As documented for staff: write under a .part name, then rename, so a half-copied file is never read.
    auto part = drop / (name + ".part");
    std::ofstream(part) << text;
    fs::rename(part, drop / name);
  }
  std::string agent_log() { return agent ? agent->log() : ""; }
};

}  // namespace

TEST_F(AgentSources, SocketBatchWithGoodAndBadEventsAnswersPerEventAndDeliversTheGoodOnesOnce) {
  auto config = base_config();
  config["local_api"] = {{"socket", socket.string()}};
  start_agent(config);
  ASSERT_TRUE(wait_until([&] { return fs::exists(socket); }, std::chrono::seconds(15))) << agent_log();

  auto [rc, answer] = send(R"([{"indicator":"terrorism_threat_level","value":4,"note":"raised"},)"
                           R"({"indicator":"no_such_indicator","value":1},)"
                           R"({"indicator":"terrorism_threat_level","value":"high"},)"
                           R"({"indicator":"terrorism_threat_level","value":42},)"
                           R"({"indicator":"cyber_incidents","value":2}])");
  EXPECT_EQ(rc, 1) << answer.dump();  // some refused
  ASSERT_TRUE(answer.is_object()) << agent_log();
  auto& r = answer["results"];
  ASSERT_EQ(r.size(), 5u) << answer.dump();
  EXPECT_TRUE(r[0]["accepted"]);
  EXPECT_EQ(r[1]["error"], "unknown indicator 'no_such_indicator'");
  EXPECT_NE(r[2]["error"].get<std::string>().find("must be a number"), std::string::npos) << r[2];
  EXPECT_NE(r[3]["error"].get<std::string>().find("outside [1, 5]"), std::string::npos) << r[3];
  EXPECT_TRUE(r[4]["accepted"]);

  auto [rc_one, one] = send(R"({"indicator":"election_interference","value":true})");
  EXPECT_EQ(rc_one, 0) << one.dump();
  auto [rc_bad, bad] = send("this is not json");
  EXPECT_EQ(rc_bad, 1);
  EXPECT_NE(bad["error"].get<std::string>().find("not valid JSON"), std::string::npos) << bad.dump();

  ASSERT_TRUE(wait_until([&] { return recorder.distinct_events().size() >= 3; }, std::chrono::seconds(20)))
      << agent_log();
  auto events = recorder.distinct_events();
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].indicator, "terrorism_threat_level");
  EXPECT_EQ(events[0].number, 4);
  EXPECT_EQ(events[0].note, "raised");
  EXPECT_EQ(events[0].seq, r[0]["seq"]);
  EXPECT_EQ(events[1].indicator, "cyber_incidents");
  EXPECT_EQ(events[1].seq, r[4]["seq"]);
  EXPECT_EQ(events[2].indicator, "election_interference");
  EXPECT_EQ(repeats(recorder), 0u);
}

TEST_F(AgentSources, SendWithoutARunningAgentSaysSo) {
  auto config = base_config();
  config["local_api"] = {{"socket", socket.string()}};
  std::ofstream(config_file) << config.dump(2);
  auto [rc, answer] = send(R"({"indicator":"cyber_incidents","value":1})");
  EXPECT_EQ(rc, 4);
}

TEST_F(AgentSources, DropDirectoryGoodFileArrivesOnceBadFileIsRefusedWhole) {
  auto config = base_config();
  config["drop_dir"] = {{"path", drop.string()}, {"poll_s", 1}, {"min_age_s", 0}};
  start_agent(config);
  ASSERT_TRUE(wait_until([&] { return fs::is_directory(drop / "done"); }, std::chrono::seconds(15))) << agent_log();

  std::string good = "indicator,value,observed_at_ms,note\n";
  for (int i = 1; i <= 50; ++i)
    good += "cyber_incidents," + std::to_string(i) + "," + std::to_string(1700000000000 + i) + ",usb import\n";
  write_drop_file("good.csv", good);
  write_drop_file("bad.jsonl",
                  "{\"indicator\":\"terrorism_threat_level\",\"value\":2}\n"
                  "{\"indicator\":\"terrorism_threat_level\",\"value\":2,\"colour\":\"red\"}\n"
                  "{\"indicator\":\"terrorism_threat_level\",\"value\":3}\n");

  ASSERT_TRUE(
      wait_until([&] { return fs::exists(drop / "done" / "good.csv") && fs::exists(drop / "failed" / "bad.jsonl"); },
                 std::chrono::seconds(20)))
      << agent_log();
  std::ifstream reason_in(drop / "failed" / "bad.jsonl.reason");
  std::string reason((std::istreambuf_iterator<char>(reason_in)), std::istreambuf_iterator<char>());
  EXPECT_NE(reason.find("nothing was ingested: 1 bad line(s)"), std::string::npos) << reason;
  EXPECT_NE(reason.find("line 2: unknown field 'colour'"), std::string::npos) << reason;

  ASSERT_TRUE(wait_until([&] { return recorder.distinct_events().size() >= 50; }, std::chrono::seconds(20)))
      << agent_log();
  // Nothing of the bad file, every line of the good one exactly once, in order.
  auto events = recorder.distinct_events();
  ASSERT_EQ(events.size(), 50u);
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(events[i].indicator, "cyber_incidents");
    EXPECT_EQ(events[i].number, i + 1);
    EXPECT_EQ(events[i].observed_at_ms, 1700000000000 + i + 1);
  }
  EXPECT_EQ(repeats(recorder), 0u);
  EXPECT_TRUE(fs::is_empty(drop / "processing"));

  // Restarting the agent ingests nothing again. (First wait until the agent has processed the
  // broker's acknowledgements, which can trail the subscriber seeing the events.)
  ASSERT_TRUE(wait_until(
      [&] {
        std::ifstream in(dir.path() / "spool" / "status.json");
        auto j = json::parse(in, nullptr, false);
        return j.is_object() && j.value("events_sent", 0) == 50;
      },
      std::chrono::seconds(20)));
  agent->signal(SIGTERM);
  ASSERT_EQ(agent->wait(std::chrono::seconds(20)), 0) << agent_log();
  start_agent(config);
  ASSERT_TRUE(
      wait_until([&] { return agent_log().find("polled every") != std::string::npos; }, std::chrono::seconds(15)));
  write_drop_file("after.jsonl", "{\"indicator\":\"terrorism_threat_level\",\"value\":5}\n");
  ASSERT_TRUE(wait_until([&] { return recorder.distinct_events().size() >= 51; }, std::chrono::seconds(20)))
      << agent_log();
  EXPECT_EQ(recorder.distinct_events().size(), 51u);
  EXPECT_EQ(recorder.distinct_events().back().indicator, "terrorism_threat_level");
}

TEST_F(AgentSources, HangingScriptIsReportedWhileProbesScriptsAndTheSocketKeepFlowing) {
  auto hang = dir.path() / "hang.sh";
  std::ofstream(hang) << "#!/bin/sh\nsleep 600\n";
  auto level = dir.path() / "level.sh";
  std::ofstream(level) << "#!/bin/sh\necho 3\n";
  fs::permissions(hang, fs::perms::owner_all);
  fs::permissions(level, fs::perms::owner_all);

  auto config = base_config();
  config["local_api"] = {{"socket", socket.string()}};
  config["probes"] = {{"interval_s", 1}};
  config["scripts"] = json::array(
      {{{"indicator", "mission_personnel_shortfall"},
        {"command", {hang.string()}},
        {"interval_s", 2},
        {"timeout_s", 1}},
       {{"indicator", "terrorism_threat_level"}, {"command", {level.string()}}, {"interval_s", 1}, {"timeout_s", 1}}});
  start_agent(config);
  ASSERT_TRUE(wait_until([&] { return fs::exists(socket); }, std::chrono::seconds(15))) << agent_log();

  ASSERT_TRUE(
      wait_until([&] { return events_of(recorder, "agent_script_failures").size() >= 2; }, std::chrono::seconds(30)))
      << agent_log();
  auto failure = events_of(recorder, "agent_script_failures")[0];
  EXPECT_EQ(failure.number, 1);
  EXPECT_NE(failure.note.find("mission_personnel_shortfall"), std::string::npos) << failure.note;
  EXPECT_NE(failure.note.find("timed out after 1 s"), std::string::npos) << failure.note;
  EXPECT_NE(agent_log().find("script probe mission_personnel_shortfall"), std::string::npos);
  EXPECT_TRUE(events_of(recorder, "mission_personnel_shortfall").empty());

  // Meanwhile the other script, the device probes and the socket kept going.
  ASSERT_TRUE(
      wait_until([&] { return events_of(recorder, "terrorism_threat_level").size() >= 3; }, std::chrono::seconds(20)));
  EXPECT_EQ(events_of(recorder, "terrorism_threat_level")[0].number, 3);
  auto start = std::chrono::steady_clock::now();
  auto [rc, answer] = send(R"({"indicator":"cyber_incidents","value":7})");
  EXPECT_EQ(rc, 0) << answer.dump();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  ASSERT_TRUE(wait_until([&] { return !events_of(recorder, "cyber_incidents").empty(); }, std::chrono::seconds(20)));

  ASSERT_TRUE(wait_until(
      [&] {
        return !events_of(recorder, "agent_memory_percent").empty() &&
               !events_of(recorder, "agent_disk_free_percent").empty() &&
               !events_of(recorder, "agent_host_uptime_s").empty() &&
               !events_of(recorder, "agent_uplink_latency_ms").empty() &&
               !events_of(recorder, "agent_cpu_percent").empty();
      },
      std::chrono::seconds(20)))
      << agent_log();
  auto reachable = events_of(recorder, "agent_uplink_reachable");
  ASSERT_FALSE(reachable.empty());
  EXPECT_EQ(reachable[0].number, 1);  // the broker is up
  EXPECT_GT(events_of(recorder, "agent_host_uptime_s")[0].number, 0);
  EXPECT_EQ(repeats(recorder), 0u);

  // SIGTERM ends the agent promptly even with a script hanging (exit 1 if probe events were still
  // unsent at that moment: they wait in the spool).
  agent->signal(SIGTERM);
  int rc_stop = agent->wait(std::chrono::seconds(10));
  EXPECT_TRUE(rc_stop == 0 || rc_stop == 1) << rc_stop << "\n" << agent_log();
}

TEST_F(AgentSources, CheckConfigListsTheInputsAndEveryProblem) {
  auto config = base_config();
  config["local_api"] = {{"socket", socket.string()}, {"mode", "0660"}};
  config["drop_dir"] = {{"path", drop.string()}};
  config["probes"] = {{"interval_s", 60}, {"clock", false}};
  std::ofstream(config_file) << config.dump(2);
  {
    ChildProcess p({agent_binary().string(), "--check-config", config_file.string()}, dir.path() / "check.log");
    EXPECT_EQ(p.wait(std::chrono::seconds(30)), 0) << p.log();
    EXPECT_NE(p.log().find("input local_api: socket " + socket.string() + " (mode 0660)"), std::string::npos)
        << p.log();
    EXPECT_NE(p.log().find("input drop_dir: " + drop.string() + ", polled every 5 s"), std::string::npos) << p.log();
    EXPECT_NE(p.log().find("input probes: every 60 s: cpu memory disk uptime uplink\n"), std::string::npos) << p.log();
  }
  config["scripts"] = json::array({{{"indicator", "not_there"}, {"command", {"/no/such/probe"}}}});
  config["drop_dir"]["poll_s"] = "often";
  std::ofstream(config_file) << config.dump(2);
  ChildProcess p({agent_binary().string(), "--check-config", config_file.string()}, dir.path() / "check2.log");
  EXPECT_EQ(p.wait(std::chrono::seconds(30)), 2) << p.log();
  EXPECT_NE(p.log().find("drop_dir.poll_s: must be a whole number"), std::string::npos) << p.log();
  EXPECT_NE(p.log().find("scripts[0].indicator: 'not_there' is not an indicator"), std::string::npos) << p.log();
  EXPECT_NE(p.log().find("scripts[0].command: /no/such/probe is not an executable file"), std::string::npos) << p.log();
}
