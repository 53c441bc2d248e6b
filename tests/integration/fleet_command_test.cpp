// Remote commands end to end (docs/fleet.md, "Remote commands"): the real aggregator, real
// agents and Mosquitto. Each command reaches its agent and is answered; one sent while the
// agent is offline waits for it until its time-to-live, and not a moment longer.
#include "integration/feed_test_support.hpp"
#include "support/aggregator_process.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <fstream>

using namespace postwatch;
using namespace postwatch::test;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

class FleetCommands : public ::testing::Test {
 protected:
  TempDir dir;
  MosquittoBroker broker;
  TokensFile tokens{dir};
  fs::path pub = dir.path() / "fleet.pub";
  std::unique_ptr<AggregatorProcess> aggregator;
  std::vector<std::unique_ptr<ChildProcess>> agents;
  static constexpr int kAgents = 2;

  void SetUp() override {
    std::ofstream(pub) << to_hex(SigningKey::from_seed({12}).public_key()) << "\n";
    aggregator = std::make_unique<AggregatorProcess>(broker, dir,
                                                     std::vector<std::string>{"--tokens-file", tokens.path.string()});
    for (int i = 0; i < kAgents; ++i) {
      const auto home = dir.path() / ("agent-" + std::to_string(i));
      fs::create_directories(home);
      json config{
          {"broker_uri", broker.uri()},
          {"agent_id", "c" + std::to_string(i)},
          {"post_id", "kabul"},
          {"allow_plaintext", true},
          {"catalogue_file", catalogue_path().string()},
          {"spool", {{"dir", (home / "spool").string()}, {"fsync", "never"}}},
          {"heartbeat_interval_s", 1},
          {"scripts", {{{"indicator", "agent_cpu_percent"}, {"command", {"/bin/echo", "7"}}, {"interval_s", 3600}}}},
          {"fleet", {{"key_file", pub.string()}, {"allow_scripts", true}}}};
      std::ofstream(home / "agent.json") << config.dump(2);
      agents.push_back(nullptr);
      start(i);
    }
  }
  void start(int i) {
    const auto home = dir.path() / ("agent-" + std::to_string(i));
    agents[i] =
        std::make_unique<ChildProcess>(std::vector<std::string>{(binary_dir() / "agent" / "postwatch-agent").string(),
                                                                "run", "--config", (home / "agent.json").string()},
                                       home / "agent.log", /*pipe_stdin=*/true);
  }
  void stop(int i) {
    agents[i]->signal(SIGTERM);
    // 0, or 1 when its script probe's last reading was not confirmed yet (it waits in the spool).
    const int status = agents[i]->wait(std::chrono::seconds(15));
    ASSERT_TRUE(status == 0 || status == 1) << status << "\n" << logs();
  }
  json get(const std::string& target) {
    auto r = http_call(aggregator->port(), feedhttp::verb::get, target, bearer(TokensFile::kRead));
    return r.status == 200 ? json::parse(r.body, nullptr, false) : json();
  }
  bool online(int i) {
    auto a = get("/api/v1/agents/kabul/c" + std::to_string(i));
    return a.is_object() && a.value("online", false);
  }
  HttpReply send(json body, const char* token = TokensFile::kOperator) {
    auto h = bearer(token);
    h["Content-Type"] = "application/json";
    return http_call(aggregator->port(), feedhttp::verb::post, "/api/v1/commands", h, body.dump());
  }
  // Sends, then waits until it is no longer pending; returns the command as the API shows it.
  json run(int agent, json body) {
    body["post"] = "kabul";
    body["agent"] = "c" + std::to_string(agent);
    auto sent = send(body);
    EXPECT_EQ(sent.status, 201) << sent.body;
    if (sent.status != 201) return json();
    const auto id = sent.json()["id"].get<std::string>();
    EXPECT_TRUE(
        wait_until([&] { return get("/api/v1/commands/" + id)["state"] != "pending"; }, std::chrono::seconds(20)))
        << logs();
    return get("/api/v1/commands/" + id);
  }
  std::string agent_log(int i) {
    std::ifstream in(dir.path() / ("agent-" + std::to_string(i)) / "agent.log");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  std::string logs() {
    std::string out = "--- aggregator\n" + aggregator->process().log();
    for (int i = 0; i < kAgents; ++i) out += "--- agent " + std::to_string(i) + "\n" + agent_log(i);
    return out;
  }
};

TEST_F(FleetCommands, EachCommandReachesItsAgentAndIsAnswered) {
  ASSERT_TRUE(wait_until([&] { return online(0) && online(1); }, std::chrono::seconds(30))) << logs();

  auto status = run(0, {{"command", "report-status"}});
  EXPECT_EQ(status["state"], "done") << status.dump(1);
  EXPECT_EQ(status["result"]["agent_id"], "c0") << status.dump(1);
  EXPECT_TRUE(status["result"].contains("spool_events")) << status.dump(1);
  EXPECT_TRUE(status["result"]["fleet"].contains("catalogue_version")) << status.dump(1);
  ASSERT_TRUE(status["result"]["inputs"].is_array()) << status.dump(1);
  EXPECT_EQ(status["result"]["inputs"][0]["source"], "script") << status.dump(1);
  EXPECT_EQ(status["by"], "duty officer");

  const auto births = get("/api/v1/agents/kabul/c0")["births"].get<int>();
  EXPECT_EQ(run(0, {{"command", "rebirth"}})["state"], "done");
  EXPECT_TRUE(wait_until([&] { return get("/api/v1/agents/kabul/c0")["births"].get<int>() > births; },
                         std::chrono::seconds(10)))
      << logs();

  EXPECT_EQ(run(0, {{"command", "flush"}})["state"], "done");
  auto probe = run(1, {{"command", "run-probe"}, {"probe", "agent_cpu_percent"}});
  EXPECT_EQ(probe["state"], "done") << probe.dump(1);
  auto no_probe = run(1, {{"command", "run-probe"}, {"probe", "terrorism_threat_level"}});
  EXPECT_EQ(no_probe["state"], "failed");
  EXPECT_NE(no_probe.value("error", "").find("no script probe for indicator 'terrorism_threat_level'"),
            std::string::npos)
      << no_probe.dump(1);
  // A seq it never wrote: nothing to send again, and it says so.
  auto resend = run(0, {{"command", "resend-from"}, {"seq", 1000000}});
  EXPECT_EQ(resend["state"], "failed");
  EXPECT_NE(resend.value("error", "").find("holds nothing from seq 1000000"), std::string::npos) << resend.dump(1);
  // The other agent never saw any of agent 1's.
  EXPECT_EQ(agent_log(0).find("run-probe"), std::string::npos);

  // What the API refuses, and the read role.
  EXPECT_EQ(send({{"post", "kabul"}, {"agent", "c0"}, {"command", "reboot"}}).status, 400);
  EXPECT_EQ(send({{"post", "kabul"}, {"agent", "c0"}, {"command", "resend-from"}}).status, 400);  // no seq
  EXPECT_EQ(send({{"post", "kabul"}, {"agent", "nobody"}, {"command", "flush"}}).status, 404);
  EXPECT_EQ(send({{"post", "kabul"}, {"agent", "c0"}, {"command", "flush"}, {"ttl_s", 0}}).status, 400);
  EXPECT_EQ(send({{"post", "kabul"}, {"agent", "c0"}, {"command", "flush"}}, TokensFile::kRead).status, 403);
  EXPECT_EQ(get("/api/v1/commands")["commands"].size(), 6u);  // the refused ones were never kept
}

TEST_F(FleetCommands, ACommandWaitsForAnOfflineAgentUntilItsTtlAndNotLonger) {
  ASSERT_TRUE(wait_until([&] { return online(0) && online(1); }, std::chrono::seconds(30))) << logs();
  stop(0);
  stop(1);
  ASSERT_TRUE(wait_until([&] { return !online(0) && !online(1); }, std::chrono::seconds(15))) << logs();
  auto kept = send({{"post", "kabul"}, {"agent", "c0"}, {"command", "report-status"}, {"ttl_s", 600}});
  auto lapsed = send({{"post", "kabul"}, {"agent", "c1"}, {"command", "report-status"}, {"ttl_s", 1}});
  ASSERT_EQ(kept.status, 201) << kept.body;
  ASSERT_EQ(lapsed.status, 201) << lapsed.body;
  const auto kept_id = kept.json()["id"].get<std::string>(), lapsed_id = lapsed.json()["id"].get<std::string>();
  ASSERT_TRUE(
      wait_until([&] { return get("/api/v1/commands/" + lapsed_id)["state"] == "expired"; }, std::chrono::seconds(10)))
      << logs();

  start(0);
  start(1);
  ASSERT_TRUE(
      wait_until([&] { return get("/api/v1/commands/" + kept_id)["state"] == "done"; }, std::chrono::seconds(30)))
      << logs();
  // A later command reaches agent 1: it is listening, and the expired one never came.
  auto later = run(1, {{"command", "flush"}});
  EXPECT_EQ(later["state"], "done") << logs();
  EXPECT_EQ(get("/api/v1/commands/" + lapsed_id)["state"], "expired");
  EXPECT_EQ(agent_log(1).find("remote command report-status"), std::string::npos) << agent_log(1);
  EXPECT_NE(agent_log(0).find("remote command report-status (" + kept_id + ") done"), std::string::npos)
      << agent_log(0);
}

}  // namespace
