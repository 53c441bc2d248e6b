// Alerting in a cluster on NATS JetStream (docs/alerting.md "In a cluster", docs/scale-out.md):
// two aggregator instances on a real 3-node NATS cluster, both configured to notify the same
// receivers. Exactly one of them notifies; an acknowledgement and a silence taken on the
// leader are served by the other and outlive the leader's SIGKILL; the new leader neither
// repeats nor escalates the acknowledged alarm, keeps the silence, and tells what happens next.
#include "integration/jetstream_test_support.hpp"
#include "support/aggregator_process.hpp"
#include "support/feed_http.hpp"
#include "support/mqtt_probe.hpp"
#include "support/webhook_receiver.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <fstream>

using namespace postwatch::test;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

// Every alarm to `duty`, repeated every 2 s while open and unacknowledged; unacknowledged
// after 4 s it goes to `chief` as well.
std::string write_config(const TempDir& dir, const WebhookReceiver& duty, const WebhookReceiver& chief) {
  auto secret = dir.path() / "hook.secret";
  std::ofstream(secret) << "cluster-alerting-secret\n";
  std::filesystem::permissions(secret, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  auto file = dir.path() / "notifications.json";
  std::ofstream(file) << R"({"channels":[
      {"name":"duty","kind":"webhook","url":")"
                      << duty.url() << R"(","secret_file":"hook.secret","timeout_s":2},
      {"name":"chief","kind":"webhook","url":")"
                      << chief.url() << R"(","secret_file":"hook.secret","timeout_s":2}],
    "routes":[{"channels":["duty"],"repeat_interval_s":2,"escalate":[{"after_s":4,"channels":["chief"]}]}],
    "retry":{"initial_s":0.1,"max_s":0.5}})";
  return file.string();
}

// The changes both receivers got of alarm `id`, as "event" strings in arrival order.
std::vector<std::string> told(const std::vector<const WebhookReceiver*>& receivers, std::uint64_t id) {
  std::vector<std::string> out;
  for (const auto* r : receivers)
    for (const auto& c : r->alarm_changes())
      if (c.value("id", std::uint64_t{0}) == id) out.push_back(c.value("event", ""));
  return out;
}

std::size_t count(const std::vector<std::string>& events, const std::string& event) {
  return static_cast<std::size_t>(std::count(events.begin(), events.end(), event));
}

json open_goal_alarm(AggregatorProcess& agg, int goal) {
  auto list = agg.get("/api/v1/alarms?state=open");
  if (list.is_object())
    for (const auto& a : list["alarms"])
      if (a["kind"] == "goal" && a.value("goal", 0) == goal) return a;
  return nullptr;
}

bool leads(AggregatorProcess& agg) {
  auto c = agg.get("/api/v1/cluster");
  return c.is_object() && c.value("leader", false);
}

// Two instances on a 3-node NATS cluster, both notifying `duty` and `chief`: A starts first and
// takes the leader lease, then B joins.
class ClusterAlerting : public ::testing::Test {
 protected:
  std::vector<std::string> args(const TempDir& dir, const std::string& name) {
    auto a = cluster_args(nats, name);
    a.insert(a.end(), {"--min-duration-s", "1", "--notifications", write_config(dir, duty, chief)});
    return a;
  }
  // The first instance of the cluster makes the stream, the buckets and 16 replicated consumers:
  // slow under a sanitizer, so it gets 60 s.
  void start_a(std::chrono::seconds ready_within = kReadyWithin) {
    a = std::make_unique<AggregatorProcess>(nats.mqtt_uri(0), dir_a, args(dir_a, "agg-a"), "agg-a", ready_within);
  }
  void start_both() {
    start_a(60s);
    ASSERT_TRUE(wait_until([&] { return cluster_settled({a.get()}, nats.partitions()) && leads(*a); }, 30s))
        << a->process().log();
    b = std::make_unique<AggregatorProcess>(nats.mqtt_uri(1), dir_b, args(dir_b, "agg-b"), "agg-b");
    ASSERT_TRUE(settles({a.get(), b.get()}, nats.partitions(), 30s));
  }

  NatsCluster nats{3};
  TempDir dir_a, dir_b;
  WebhookReceiver duty, chief;
  std::unique_ptr<AggregatorProcess> a, b;
};

}  // namespace

TEST_F(ClusterAlerting, AnAcknowledgementAndASilenceOutliveTheLeaderAndOnlyOneInstanceNotifies) {
  const std::vector<const WebhookReceiver*> receivers{&duty, &chief};
  ASSERT_NO_FATAL_FAILURE(start_both());
  ASSERT_TRUE(leads(*a));
  AggregatorProcess& b = *this->b;

  // A silence for goal 5, taken on A: B lists it under the same id.
  auto created = http_call(a->port(), feedhttp::verb::post, "/api/v1/silences", {{"Content-Type", "application/json"}},
                           R"({"match":{"goal":5},"comment":"exercise season","by":"desk a","duration_s":600})");
  ASSERT_EQ(created.status, 201) << created.body;
  const std::uint64_t silence = created.json()["id"];
  auto b_lists = [&] {
    for (const auto& s : b.get("/api/v1/silences").value("silences", json::array()))
      if (s["id"] == silence && s["state"] == "active" && s["created_by"] == "desk a") return true;
    return false;
  };
  EXPECT_TRUE(wait_until(b_lists, 10s)) << b.get("/api/v1/silences").dump();

  // Goal 7 turns red: the receivers hear it once, from one instance, though both are configured.
  MqttProbe pub(nats.mqtt_uri(0), "cluster-alerting-publisher");
  pub.publish_event("sub-saharan-africa", "bamako", "terrorism_threat_level", 5);
  json alarm;
  ASSERT_TRUE(wait_until([&] { return !(alarm = open_goal_alarm(*a, 7)).is_null(); }, 20s)) << a->process().log();
  const std::uint64_t id = alarm["id"];
  ASSERT_TRUE(wait_until([&] { return count(told(receivers, id), "raised") >= 1; }, 10s)) << a->process().log();

  // Acknowledged on A, the leader: B serves the acknowledgement, and the receivers hear it once.
  auto ack = http_call(a->port(), feedhttp::verb::post, "/api/v1/alarms/" + std::to_string(id) + "/ack",
                       {{"Content-Type", "application/json"}}, R"({"by":"duty officer","comment":"on it"})");
  ASSERT_EQ(ack.status, 200) << ack.body;
  ASSERT_TRUE(wait_until(
      [&] {
        auto x = open_goal_alarm(b, 7);
        return x.is_object() && x["id"] == id && x.value("acknowledged", false);
      },
      10s))
      << open_goal_alarm(b, 7).dump();
  ASSERT_TRUE(wait_until([&] { return count(told(receivers, id), "acknowledged") >= 1; }, 10s));

  // A dies. B leads, still shows the acknowledgement and the silence.
  a->process().signal(SIGKILL);
  a->process().wait(5s);
  ASSERT_TRUE(wait_until([&] { return leads(b); }, 20s)) << b.get("/api/v1/cluster").dump();
  const auto before = told(receivers, id);
  EXPECT_EQ(open_goal_alarm(b, 7).value("acknowledged", false), true);
  EXPECT_TRUE(b_lists());

  // The acknowledged alarm is not told again: no repeat (every 2 s), no escalation (after 4 s),
  // no second "raised" from the new leader. This waits for something that must not come.
  EXPECT_FALSE(wait_until([&] { return told(receivers, id).size() > before.size(); }, 6s))
      << testing::PrintToString(told(receivers, id));

  // The silence taken on the dead instance holds on B: goal 5's alarm is on the board, marked,
  // and told to nobody.
  pub.publish_event("europe", "paris", "military_buildup_level", 5);
  json silenced;
  ASSERT_TRUE(wait_until([&] { return !(silenced = open_goal_alarm(b, 5)).is_null(); }, 20s)) << b.process().log();
  EXPECT_EQ(silenced.value("silenced_by", std::uint64_t{0}), silence) << silenced.dump();

  // B tells what happens next: goal 7 clears, and the receivers hear it once.
  pub.publish_event("sub-saharan-africa", "bamako", "terrorism_threat_level", 1);
  ASSERT_TRUE(wait_until([&] { return count(told(receivers, id), "cleared") >= 1; }, 20s)) << b.process().log();
  // The duty desk heard each change once; nothing was repeated or escalated after the kill
  // (A may have repeated or escalated it before the acknowledgement reached it: that is right).
  const auto to_duty = told({&duty}, id), all = told(receivers, id);
  EXPECT_EQ(count(to_duty, "raised"), 1u) << testing::PrintToString(to_duty);
  EXPECT_EQ(count(to_duty, "acknowledged"), 1u) << testing::PrintToString(to_duty);
  EXPECT_EQ(count(to_duty, "cleared"), 1u) << testing::PrintToString(to_duty);
  EXPECT_EQ(count(all, "repeat") + count(all, "escalation"), count(before, "repeat") + count(before, "escalation"))
      << testing::PrintToString(all);
  EXPECT_TRUE(told(receivers, silenced["id"].get<std::uint64_t>()).empty())
      << testing::PrintToString(told(receivers, silenced["id"].get<std::uint64_t>()));
}

// A leader that dies with a notification it could not deliver (its receiver was down): the
// successor takes it over from the cluster's outbox and delivers it when the receiver is
// back; the dead instance, run again, drops its own copy instead of sending it twice.
TEST_F(ClusterAlerting, ADeadLeadersUndeliveredNotificationGoesOutFromItsSuccessorOnce) {
  duty.stop();
  ASSERT_NO_FATAL_FAILURE(start_both());
  AggregatorProcess& b = *this->b;

  MqttProbe pub(nats.mqtt_uri(0), "cluster-outbox-publisher");
  pub.publish_event("sub-saharan-africa", "bamako", "terrorism_threat_level", 5);
  json alarm;
  ASSERT_TRUE(wait_until([&] { return !(alarm = open_goal_alarm(*a, 7)).is_null(); }, 20s)) << a->process().log();
  const std::uint64_t id = alarm["id"];
  // A tried five times (0.1, 0.2, 0.4, 0.8 s apart): long enough for its outbox to be mirrored
  // (once a second). Then it dies.
  ASSERT_TRUE(wait_until([&] { return a->get("/api/v1/stats").value("notifications_failed_attempts", 0) >= 5; }, 20s))
      << a->process().log();
  a->process().signal(SIGKILL);
  a->process().wait(5s);

  // B leads, finds A gone, and takes the notification over: pending on B, as the receiver is
  // still down.
  ASSERT_TRUE(wait_until([&] { return leads(b); }, 20s)) << b.get("/api/v1/cluster").dump();
  ASSERT_TRUE(wait_until([&] { return b.process().log().find("from agg-a, which stopped") != std::string::npos; }, 30s))
      << b.process().log();
  EXPECT_TRUE(told({&duty}, id).empty());
  duty.start();
  ASSERT_TRUE(wait_until([&] { return count(told({&duty}, id), "raised") >= 1; }, 20s)) << b.process().log();

  // A runs again: its own copy was taken over, so it drops it and sends nothing.
  start_a();
  ASSERT_TRUE(wait_until(
      [&] { return a->process().log().find("was taken over by another instance") != std::string::npos; }, 20s))
      << a->process().log();
  ASSERT_TRUE(wait_until([&] { return a->get("/api/v1/stats").value("notifications_pending", 1) == 0; }, 10s));
  ASSERT_TRUE(wait_until([&] { return b.get("/api/v1/stats").value("notifications_pending", 1) == 0; }, 10s));
  EXPECT_EQ(count(told({&duty}, id), "raised"), 1u) << testing::PrintToString(told({&duty}, id));
}
