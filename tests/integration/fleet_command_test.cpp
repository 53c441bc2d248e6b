// Remote commands end to end (docs/fleet.md, "Remote commands"): the real aggregator, real
// agents and Mosquitto. Each command reaches its agent and is answered; one sent while the
// agent is offline waits for it until its time-to-live, and not a moment longer.
#include "integration/fleet_command_fixture.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <fstream>

using namespace postwatch;
using namespace postwatch::test;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

class FleetCommands : public FleetCommandFleet {
 protected:
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
  auto metrics = http_get(aggregator->port(), "/metrics");
  EXPECT_NE(metrics.body.find("postwatch_commands{state=\"done\"} 4"), std::string::npos) << metrics.body;
  EXPECT_NE(metrics.body.find("postwatch_commands{state=\"failed\"} 2"), std::string::npos) << metrics.body;
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
