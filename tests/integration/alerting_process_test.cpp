// Webhook notifications through the real postwatch-aggregator (docs/alerting.md): an alarm raised
// by published events reaches a receiver on loopback, signed; a receiver that is down gets it
// once it is back, also after the aggregator was SIGKILLed in between; a bad notifications
// file stops the aggregator at start with exit code 2 and a message naming the entry.
#include "postwatch/clock.hpp"
#include "support/aggregator_process.hpp"
#include "support/feed_http.hpp"
#include "support/mqtt_probe.hpp"
#include "support/webhook_receiver.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <csignal>
#include <fstream>
#include <map>

using namespace postwatch;
using namespace postwatch::test;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr auto kOwnerOnly = std::filesystem::perms::owner_read | std::filesystem::perms::owner_write;
const std::string kSecret = "process-test-secret";

// dir/notifications.json routing red goal alarms to `url`; retries start at 100 ms.
std::string write_config(const TempDir& dir, const std::string& url) {
  auto secret = dir.path() / "hook.secret";
  std::ofstream(secret) << kSecret << "\n";
  std::filesystem::permissions(secret, kOwnerOnly);
  auto file = dir.path() / "notifications.json";
  std::ofstream(file) << R"({"channels":[{"name":"duty","kind":"webhook","url":")" << url
                      << R"(","secret_file":"hook.secret","timeout_s":2}],
    "routes":[{"match":{"kind":"goal","level":"red","region":"sub-saharan-africa"},"channels":["duty"]}],
    "retry":{"initial_s":0.1,"max_s":0.5}})";
  return file.string();
}

bool signed_with_secret(const ReceivedWebhook& r) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), kSecret.data(), static_cast<int>(kSecret.size()),
       reinterpret_cast<const unsigned char*>(r.body.data()), r.body.size(), mac, &len);
  std::string hex;
  char b[3];
  for (unsigned i = 0; i < len; ++i) {
    std::snprintf(b, sizeof b, "%02x", mac[i]);
    hex += b;
  }
  return r.signature == "sha256=" + hex;
}

// Bamako reports the highest terrorism threat level: goal 7 turns red and a goal alarm opens.
void make_goal7_red(const MosquittoBroker& broker, AggregatorProcess& aggregator) {
  MqttProbe pub(broker.uri(), "alerting-test-publisher");
  pub.publish_event("sub-saharan-africa", "bamako", "terrorism_threat_level", 5);
  ASSERT_TRUE(wait_until([&] { return aggregator.goal_status(7) == "red"; }, 10s)) << aggregator.goal_status(7);
}

bool has_goal7_raised(const WebhookReceiver& receiver) {
  for (const auto& c : receiver.alarm_changes())
    if (c["kind"] == "goal" && c["goal"] == 7 && c["event"] == "raised" && c["level"] == "red") return true;
  return false;
}

}  // namespace

TEST(Alerting, ARedAlarmReachesTheWebhookSignedWithinADeadline) {
  MosquittoBroker broker;
  TempDir dir;
  WebhookReceiver receiver;
  AggregatorProcess aggregator(broker, dir, {"--notifications", write_config(dir, receiver.url())});
  make_goal7_red(broker, aggregator);
  ASSERT_TRUE(wait_until([&] { return has_goal7_raised(receiver); }, 5s)) << aggregator.process().log();
  for (const auto& r : receiver.received()) EXPECT_TRUE(signed_with_secret(r)) << r.body;
  ASSERT_TRUE(wait_until([&] { return aggregator.get("/api/v1/stats").value("notifications_delivered", 0) >= 1; }, 2s));
  auto metrics = http_get(aggregator.port(), "/metrics").body;
  EXPECT_NE(metrics.find("postwatch_notifications_delivered_total 1"), std::string::npos) << metrics;
  EXPECT_EQ(aggregator.process().log().find(kSecret), std::string::npos);
}

// The receiver is down for a minute (ten seconds under a sanitizer): the alarm is raised and
// cleared meanwhile, and the aggregator is SIGKILLed and started again halfway, right after the
// clearance was stored. Once the receiver is back it gets both notifications, once each: the
// restored alarm's raising is not news, and neither is its clearance, which the alarm store may
// not have committed before the kill (the outbox remembers what it stored for each alarm).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr auto kHalfOutage = std::chrono::seconds(5);
#else
constexpr auto kHalfOutage = std::chrono::seconds(30);
#endif

TEST(Alerting, AReceiverDownForAMinuteAcrossAnAggregatorSigkillGetsEveryNotificationWhenBack) {
  MosquittoBroker broker("", /*persistent=*/true);
  TempDir dir;
  WebhookReceiver receiver;
  receiver.stop();
  const auto down_since = std::chrono::steady_clock::now();
  const auto config = write_config(dir, receiver.url());
  auto aggregator = std::make_unique<AggregatorProcess>(
      broker, dir, std::vector<std::string>{"--notifications", config}, "alert-kill");
  auto failed = [&] { return aggregator->get("/api/v1/stats").value("notifications_failed_attempts", 0ull); };
  MqttProbe pub(broker.uri(), "alerting-test-publisher");
  pub.publish_event("sub-saharan-africa", "bamako", "terrorism_threat_level", 5);
  ASSERT_TRUE(wait_until([&] { return aggregator->goal_status(7) == "red"; }, 10s)) << aggregator->goal_status(7);
  // Raised, stored, and tried (and failed) all through the first half of the outage: the outage
  // is the scenario, so its length is waited out.
  auto down_for = [&] { return std::chrono::steady_clock::now() - down_since; };
  ASSERT_TRUE(wait_until([&] { return failed() >= 2 && down_for() >= kHalfOutage; }, kHalfOutage + 30s))
      << aggregator->process().log();
  // Cleared while the receiver is still down: a second notification waits beside the first.
  pub.publish_event("sub-saharan-africa", "bamako", "terrorism_threat_level", 1);
  ASSERT_TRUE(wait_until([&] { return aggregator->get("/api/v1/stats").value("notifications_pending", 0) >= 2; }, 20s))
      << aggregator->process().log();
  aggregator->process().signal(SIGKILL);
  aggregator->process().wait(5s);
  aggregator.reset();
  aggregator = std::make_unique<AggregatorProcess>(broker, dir, std::vector<std::string>{"--notifications", config},
                                                   "alert-kill");
  // Both came back from the outbox, and nothing was added; the second half of the outage.
  ASSERT_TRUE(wait_until([&] { return failed() >= 2 && down_for() >= 2 * kHalfOutage; }, kHalfOutage + 30s))
      << aggregator->process().log();
  EXPECT_EQ(aggregator->get("/api/v1/stats").value("notifications_pending", 0), 2) << aggregator->process().log();
  const auto outage = std::chrono::duration_cast<std::chrono::seconds>(down_for());
  receiver.start();
  ASSERT_TRUE(wait_until([&] { return aggregator->get("/api/v1/stats").value("notifications_pending", 1) == 0; }, 10s))
      << aggregator->process().log();
  int raised = 0, cleared = 0;
  for (const auto& c : receiver.alarm_changes()) {
    raised += c["goal"] == 7 && c["event"] == "raised";
    cleared += c["goal"] == 7 && c["event"] == "cleared";
  }
  // The restored alarm is not news: it was raised once, so it is told once; so is its clearance.
  EXPECT_EQ(raised, 1) << "after " << outage.count() << " s down";
  EXPECT_EQ(cleared, 1) << "after " << outage.count() << " s down";
  for (const auto& r : receiver.received()) EXPECT_TRUE(signed_with_secret(r));
}

TEST(Alerting, ABadNotificationsFileStopsTheAggregatorWithExitCode2) {
  TempDir dir;
  auto file = dir.path() / "bad.json";
  std::ofstream(file) << R"({"channels":[{"name":"duty","kind":"webhook","url":"http://127.0.0.1:9/",
    "secret_file":"nope.secret"}],"routes":[{"channels":["pager"]}]})";
  ChildProcess p(
      {(binary_dir() / "aggregator" / "postwatch-aggregator").string(), "--catalogue", catalogue_path().string(),
       "--data-dir", (dir.path() / "data").string(), "--http-port", "0", "--notifications", file.string()},
      dir.path() / "aggregator.log");
  EXPECT_EQ(p.wait(10s), 2) << p.log();
  EXPECT_NE(p.log().find("bad.json: channels[0] ('duty'): secret_file:"), std::string::npos) << p.log();
}

namespace {

// The change `event` of the open alarm `kind` in what `receiver` got, with its notification's
// created_at_ms; null when it has not come.
json change_of(const WebhookReceiver& receiver, const std::string& kind, const std::string& event) {
  for (const auto& r : receiver.received()) {
    auto n = r.json();
    for (auto a : n.value("alarms", json::array()))
      if (a["kind"] == kind && a["event"] == event) return a["created_at_ms"] = n["created_at_ms"], a;
  }
  return nullptr;
}

HttpReply acknowledge(AggregatorProcess& agg, std::uint64_t id) {
  return http_call(agg.port(), feedhttp::verb::post, "/api/v1/alarms/" + std::to_string(id) + "/ack",
                   {{"Content-Type", "application/json"}}, R"({"by":"duty officer","comment":"on it"})");
}

}  // namespace

// Escalation (docs/alerting.md, "Escalation"): red alarms go to the duty officer, and to the
// lead when nobody acknowledged them within 4 s (time enough, under a sanitizer too, to acknowledge the first). The
// goal alarm is acknowledged at once, the topic mismatch raised after it is not: the lead hears of the second only, not
// before its time, and then of its acknowledgement.
TEST(Alerting, AnAlarmNobodyAcknowledgesEscalatesAndAnAcknowledgedOneDoesNot) {
  MosquittoBroker broker;
  TempDir dir;
  WebhookReceiver duty, lead;
  std::ofstream(dir.path() / "hook.secret") << kSecret << "\n";
  std::filesystem::permissions(dir.path() / "hook.secret", kOwnerOnly);
  const auto config = dir.path() / "notifications.json";
  std::ofstream(config)
      << json{{"channels",
               {{{"name", "duty"}, {"kind", "webhook"}, {"url", duty.url()}, {"secret_file", "hook.secret"}},
                {{"name", "lead"}, {"kind", "webhook"}, {"url", lead.url()}, {"secret_file", "hook.secret"}}}},
              {"routes",
               {{{"match", {{"level", "red"}}},
                 {"channels", {"duty"}},
                 {"escalate", {{{"after_s", 4}, {"channels", {"lead"}}}}}}}}}
             .dump();
  AggregatorProcess agg(broker, dir, {"--notifications", config.string()});

  make_goal7_red(broker, agg);
  ASSERT_TRUE(wait_until([&] { return !change_of(duty, "goal", "raised").is_null(); }, 5s)) << agg.process().log();
  auto reply = acknowledge(agg, change_of(duty, "goal", "raised")["id"].get<std::uint64_t>());
  ASSERT_EQ(reply.status, 200) << reply.body;

  // Batches of bamako's on paris's topic: a red topic_mismatch alarm, left unacknowledged.
  MqttProbe pub(broker.uri(), "escalation-test-publisher");
  for (std::uint64_t seq = 1; seq <= 3; ++seq) {
    EventBatch b{"gw-1", "bamako", now_utc_ms(), {}};
    b.events.push_back(IndicatorEvent{seq, now_utc_ms(), "terrorism_threat_level", ValueKind::Level, 5, "", "", {}});
    pub.publish("postwatch/v1/europe/paris/gw-1/events", encode_batch(b));
  }
  ASSERT_TRUE(wait_until([&] { return !change_of(lead, "topic_mismatch", "escalation").is_null(); }, 15s))
      << agg.process().log();
  auto escalation = change_of(lead, "topic_mismatch", "escalation");
  EXPECT_GE(escalation["created_at_ms"].get<std::int64_t>() - escalation["raised_at_ms"].get<std::int64_t>(), 4000);
  EXPECT_EQ(escalation["escalation"], (json{{"step", 1}, {"of", 1}, {"after_s", 4}}));
  // The goal alarm's deadline passed before the mismatch's: acknowledged, it never went on.
  EXPECT_TRUE(change_of(lead, "goal", "escalation").is_null()) << change_of(lead, "goal", "escalation");
  for (const auto& r : lead.received()) EXPECT_TRUE(signed_with_secret(r));

  ASSERT_EQ(acknowledge(agg, escalation["id"].get<std::uint64_t>()).status, 200);
  EXPECT_TRUE(wait_until([&] { return !change_of(lead, "topic_mismatch", "acknowledged").is_null(); }, 5s));
}

// Flapping (docs/alerting.md, "Flapping"): goal 7 turns red and back four times; with more than
// two openings in a minute it flaps. The duty officer hears of the first two, then once that it
// flaps, and nothing of the fourth; the board and the API still show every alarm, marked.
TEST(Alerting, AnAlarmThatKeepsOpeningIsNotifiedOnceAsFlapping) {
  MosquittoBroker broker;
  TempDir dir;
  WebhookReceiver duty;
  std::ofstream(dir.path() / "hook.secret") << kSecret << "\n";
  std::filesystem::permissions(dir.path() / "hook.secret", kOwnerOnly);
  const auto config = dir.path() / "notifications.json";
  std::ofstream(config) << json{
      {"channels", {{{"name", "duty"}, {"kind", "webhook"}, {"url", duty.url()}, {"secret_file", "hook.secret"}}}},
      {"routes", {{{"match", {{"level", "red"}}}, {"channels", {"duty"}}}}},
      {"flapping",
       {{"openings", 2},
        {"window_s", 60}}}}.dump();
  AggregatorProcess agg(broker, dir, {"--notifications", config.string()});
  MqttProbe pub(broker.uri(), "flapping-test-publisher");
  auto open_goal7 = [&] {
    auto r = http_get(agg.port(), "/api/v1/alarms?state=open");
    for (const auto& a : json::parse(r.body, nullptr, false).value("alarms", json::array()))
      if (a["kind"] == "goal" && a["goal"] == 7) return a;
    return json();
  };
  for (int i = 0; i < 4; ++i) {
    pub.publish_event("sub-saharan-africa", "bamako", "terrorism_threat_level", 5);
    ASSERT_TRUE(wait_until([&] { return open_goal7().is_object(); }, 10s)) << i << agg.process().log();
    if (i == 3) break;  // the last one stays open
    pub.publish_event("sub-saharan-africa", "bamako", "terrorism_threat_level", 1);
    ASSERT_TRUE(wait_until([&] { return open_goal7().is_null(); }, 10s)) << i;
  }
  EXPECT_EQ(open_goal7().value("flapping", false), true) << open_goal7();

  // A red alarm of another kind after it: once it has arrived, so has all that came before.
  for (std::uint64_t seq = 1; seq <= 3; ++seq) {
    EventBatch b{"gw-1", "bamako", now_utc_ms(), {}};
    b.events.push_back(IndicatorEvent{seq, now_utc_ms(), "terrorism_threat_level", ValueKind::Level, 5, "", "", {}});
    pub.publish("postwatch/v1/europe/paris/gw-1/events", encode_batch(b));
  }
  ASSERT_TRUE(wait_until([&] { return !change_of(duty, "topic_mismatch", "raised").is_null(); }, 10s));
  std::map<std::string, int> goal7;
  for (const auto& c : duty.alarm_changes())
    if (c["kind"] == "goal") ++goal7[c["event"].get<std::string>()];
  EXPECT_EQ(goal7, (std::map<std::string, int>{{"raised", 2}, {"cleared", 2}, {"flapping", 1}}));
  EXPECT_EQ(change_of(duty, "goal", "flapping")["flapping"], (json{{"openings", 3}, {"window_s", 60}}));
  EXPECT_EQ(json::parse(http_get(agg.port(), "/api/v1/alarms").body)["alarms"].size(), 5u)
      << "the board keeps every alarm";
}
