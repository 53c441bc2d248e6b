// Silences and maintenance windows through the real postwatch-aggregator (docs/alerting.md,
// "Silences and maintenance windows"): a silence holds a red alarm's notification but not the
// board, and once it expires the alarm is told; a maintenance window keeps its post from
// counting as silent; silences need an operator, refuse bad bodies, and survive a restart.
#include "postwatch/clock.hpp"
#include "postwatch/topics.hpp"
#include "support/aggregator_process.hpp"
#include "support/feed_http.hpp"
#include "support/mqtt_probe.hpp"
#include "support/webhook_receiver.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <fstream>

using namespace postwatch;
using namespace postwatch::test;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

// dir/notifications.json sending every alarm to `url`; retries start at 100 ms.
std::string write_config(const TempDir& dir, const std::string& url) {
  auto secret = dir.path() / "hook.secret";
  std::ofstream(secret) << "silence-test-secret\n";
  std::filesystem::permissions(secret, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  auto file = dir.path() / "notifications.json";
  std::ofstream(file) << R"({"channels":[{"name":"duty","kind":"webhook","url":")" << url
                      << R"(","secret_file":"hook.secret","timeout_s":2}],
    "routes":[{"channels":["duty"]}], "retry":{"initial_s":0.1,"max_s":0.5}})";
  return file.string();
}

HttpReply post_silence(unsigned short port, const json& body, const std::string& token = "") {
  std::map<std::string, std::string> headers{{"Content-Type", "application/json"}};
  if (!token.empty()) headers["Authorization"] = "Bearer " + token;
  return http_call(port, feedhttp::verb::post, "/api/v1/silences", headers, body.dump());
}

std::optional<json> open_alarm(AggregatorProcess& agg, const std::string& kind, const std::string& post_or_goal) {
  auto r = http_get(agg.port(), "/api/v1/alarms?state=open");
  EXPECT_EQ(r.status, 200) << r.body << agg.process().log();
  auto list = json::parse(r.body, nullptr, false);
  if (!list.is_object()) return std::nullopt;
  for (const auto& a : list.value("alarms", json::array()))
    if (a["kind"] == kind &&
        (a.value("post", "") == post_or_goal || std::to_string(a.value("goal", 0)) == post_or_goal))
      return a;
  return std::nullopt;
}

// An agent's birth (online) or death (offline) on its state topic.
void agent_state(MqttProbe& pub, const std::string& region, const std::string& post, bool online) {
  AgentState s;
  s.agent_id = "t1";
  s.post_id = post;
  s.online = online;
  s.at_ms = now_utc_ms();
  s.heartbeat_interval_s = 30;
  pub.publish(topics::agent_topic(region, post, "t1", topics::Channel::State), encode_agent_state(s));
}

}  // namespace

TEST(Silences, ASilenceHoldsTheNotificationNotTheBoardAndOnceItEndsTheAlarmIsTold) {
  MosquittoBroker broker;
  TempDir dir;
  WebhookReceiver receiver;
  AggregatorProcess agg(broker, dir, {"--notifications", write_config(dir, receiver.url())});
  auto created = post_silence(agg.port(), {{"match", {{"post", "bamako"}, {"level", "red"}}},
                                           {"comment", "planned power works"},
                                           {"by", "duty officer"},
                                           {"duration_s", 3}});
  ASSERT_EQ(created.status, 201) << created.body;
  const auto silence = created.json();
  EXPECT_EQ(silence["state"], "active");
  EXPECT_EQ(silence["created_by"], "duty officer");

  MqttProbe pub(broker.uri(), "silence-test-publisher");
  pub.publish_event("sub-saharan-africa", "bamako", "terrorism_threat_level", 5);
  // The board shows the truth: goal 7 red, its alarm open, marked as silenced.
  std::optional<json> a;
  ASSERT_TRUE(wait_until([&] { return (a = open_alarm(agg, "goal", "7")).has_value(); }, 10s)) << agg.process().log();
  EXPECT_EQ(agg.goal_status(7), "red");
  EXPECT_EQ(a->value("silenced_by", 0), silence["id"]);
  // Nobody is told while the silence holds...
  const std::int64_t ends = silence["ends_at_ms"];
  while (now_utc_ms() < ends - 300) {
    ASSERT_TRUE(receiver.alarm_changes().empty()) << receiver.alarm_changes().front().dump();
    ASSERT_FALSE(wait_until([&] { return !receiver.alarm_changes().empty(); }, 100ms));
  }
  // ... and once it has expired, the alarm is told once, as raised, at its level now.
  ASSERT_TRUE(wait_until([&] { return !receiver.alarm_changes().empty(); }, 5s)) << agg.process().log();
  auto change = receiver.alarm_changes().front();
  EXPECT_EQ(change["event"], "raised");
  EXPECT_EQ(change["level"], "red");
  EXPECT_GE(std::stoll(receiver.received().front().timestamp) * 1000, ends - 1000);
  auto listed = agg.get("/api/v1/silences");
  ASSERT_EQ(listed["silences"].size(), 1u) << listed.dump();
  EXPECT_EQ(listed["silences"][0]["state"], "expired");
  EXPECT_FALSE(open_alarm(agg, "goal", "7")->contains("silenced_by"));
  EXPECT_NE(agg.process().log().find("silence 1 has ended"), std::string::npos);
}

TEST(Silences, AMaintenanceWindowKeepsItsPostFromCountingAsSilent) {
  MosquittoBroker broker;
  TempDir dir;
  AggregatorProcess agg(broker, dir);
  auto window = post_silence(agg.port(), {{"match", {{"post", "kabul"}}},
                                          {"comment", "generator replaced"},
                                          {"by", "duty officer"},
                                          {"maintenance", true},
                                          {"duration_s", 600}});
  ASSERT_EQ(window.status, 201) << window.body;
  const std::uint64_t id = window.json()["id"];
  MqttProbe pub(broker.uri(), "maintenance-test-publisher");
  // Two posts report, then both agents go offline: only the one without a window is silent.
  for (auto [region, post] : {std::pair{"asia", "kabul"}, std::pair{"sub-saharan-africa", "dakar"}}) {
    agent_state(pub, region, post, true);
    pub.publish_event(region, post, "terrorism_threat_level", 2);
  }
  ASSERT_TRUE(wait_until([&] { return agg.get("/api/v1/posts/dakar").value("last_seen_ms", 0) > 0; }, 10s));
  for (auto [region, post] : {std::pair{"asia", "kabul"}, std::pair{"sub-saharan-africa", "dakar"}})
    agent_state(pub, region, post, false);
  ASSERT_TRUE(wait_until([&] { return open_alarm(agg, "post_silent", "dakar").has_value(); }, 10s))
      << agg.process().log();
  auto kabul = agg.get("/api/v1/posts/kabul");
  EXPECT_EQ(kabul["silent"], false) << kabul.dump();
  EXPECT_EQ(kabul.value("maintenance", 0u), id);
  EXPECT_FALSE(open_alarm(agg, "post_silent", "kabul"));
  EXPECT_EQ(agg.get("/api/v1/posts/dakar")["silent"], true);
  // The window ends early: kabul is silent again, and its alarm opens.
  auto ended = http_call(agg.port(), feedhttp::verb::delete_, "/api/v1/silences/" + std::to_string(id));
  ASSERT_EQ(ended.status, 200) << ended.body;
  EXPECT_EQ(ended.json()["state"], "expired");
  ASSERT_TRUE(wait_until([&] { return open_alarm(agg, "post_silent", "kabul").has_value(); }, 10s));
  EXPECT_FALSE(agg.get("/api/v1/posts/kabul").contains("maintenance"));
}

TEST(Silences, NeedAnOperatorRefuseBadBodiesAndSurviveARestart) {
  MosquittoBroker broker;
  TempDir dir;
  TokensFile tokens(dir);
  const json body{{"match", {{"region", "asia"}}}, {"comment", "regional desk drill"}, {"duration_s", 3600}};
  std::uint64_t id = 0;
  {
    AggregatorProcess agg(broker, dir, {"--tokens-file", tokens.path.string()}, "silence-restart");
    EXPECT_EQ(post_silence(agg.port(), body).status, 401);
    EXPECT_EQ(post_silence(agg.port(), body, TokensFile::kRead).status, 403);
    auto bad = post_silence(agg.port(), {{"match", {{"post", "atlantis"}}}, {"comment", "x"}, {"duration_s", 60}},
                            TokensFile::kOperator);
    EXPECT_EQ(bad.status, 400);
    EXPECT_NE(bad.body.find("unknown post 'atlantis'"), std::string::npos) << bad.body;
    auto not_json = http_call(agg.port(), feedhttp::verb::post, "/api/v1/silences",
                              {{"Authorization", std::string("Bearer ") + TokensFile::kOperator}}, "match=x");
    EXPECT_EQ(not_json.status, 415);
    auto ok = post_silence(agg.port(), body, TokensFile::kOperator);
    ASSERT_EQ(ok.status, 201) << ok.body;
    EXPECT_EQ(ok.json()["created_by"], "duty officer");  // the token's name
    id = ok.json()["id"];
    auto gone = http_call(agg.port(), feedhttp::verb::delete_, "/api/v1/silences/999",
                          {{"Authorization", std::string("Bearer ") + TokensFile::kOperator}});
    EXPECT_EQ(gone.status, 404);
    EXPECT_EQ(http_call(agg.port(), feedhttp::verb::delete_, "/api/v1/silences/1",
                        {{"Authorization", std::string("Bearer ") + TokensFile::kRead}})
                  .status,
              403);
    agg.process().signal(SIGTERM);  // stopped as systemd stops it; the store commits first
    ASSERT_EQ(agg.process().wait(10s), 0) << agg.process().log();
  }
  AggregatorProcess agg(broker, dir, {"--tokens-file", tokens.path.string()}, "silence-restart");
  auto listed = http_call(agg.port(), feedhttp::verb::get, "/api/v1/silences",
                          {{"Authorization", std::string("Bearer ") + TokensFile::kRead}});
  ASSERT_EQ(listed.status, 200);
  auto list = listed.json_at("silences");
  ASSERT_EQ(list.size(), 1u) << listed.body;
  EXPECT_EQ(list[0]["id"], id);
  EXPECT_EQ(list[0]["state"], "active");
  EXPECT_EQ(list[0]["comment"], "regional desk drill");
}
