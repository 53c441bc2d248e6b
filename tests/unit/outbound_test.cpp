// OutboundQueue and MqttOutbox without a broker: priorities, coalescing of retained state,
// the window, failures and retries, shutdown; nothing is lost without being counted.
#include "outbound/mqtt_outbox.hpp"
#include "outbound/outbound_queue.hpp"

#include <gtest/gtest.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <boost/asio/io_context.hpp>

#include <map>

using namespace postwatch::aggregator;

namespace {

OutboundMessage retained(std::string topic, std::string payload, OutboundPriority p = OutboundPriority::Confirm) {
  return {std::move(topic), std::move(payload), true, p};
}
OutboundMessage notice(std::string topic, std::string payload) {
  return {std::move(topic), std::move(payload), false, OutboundPriority::Urgent};
}

TEST(OutboundQueue, TakesByPriorityThenInOrder) {
  OutboundQueue q({16, 100});
  q.push(retained("snap/1", "s1", OutboundPriority::Snapshot));
  q.push(retained("confirm/a", "c1"));
  q.push(notice("alarms", "a1"));
  q.push(retained("confirm/b", "c2"));
  q.push(notice("alarms", "a2"));
  std::vector<std::string> order;
  while (auto t = q.take()) order.push_back(t->message->payload);
  EXPECT_EQ(order, (std::vector<std::string>{"a1", "a2", "c1", "c2", "s1"}));
  EXPECT_EQ(q.in_flight(), 5u);
  EXPECT_EQ(q.waiting(), 0u);
}

TEST(OutboundQueue, RetainedStateIsCoalescedPerTopicAndKeepsItsPlace) {
  OutboundQueue q({16, 100});
  for (int i = 1; i <= 1000; ++i) {
    q.push(retained("confirm/a", "a" + std::to_string(i)));
    q.push(retained("confirm/b", "b" + std::to_string(i)));
  }
  EXPECT_EQ(q.waiting(), 2u);  // O(topics), not O(pushes)
  EXPECT_EQ(q.counters().coalesced, 1998u);
  auto first = q.take();
  auto second = q.take();
  ASSERT_TRUE(first && second);
  EXPECT_EQ(first->message->payload, "a1000");
  EXPECT_EQ(second->message->payload, "b1000");
  EXPECT_FALSE(q.take());
}

TEST(OutboundQueue, WindowBoundsWhatIsInFlight) {
  OutboundQueue q({2, 100});
  for (int i = 0; i < 5; ++i) q.push(notice("alarms", std::to_string(i)));
  auto a = q.take();
  auto b = q.take();
  ASSERT_TRUE(a && b);
  EXPECT_FALSE(q.take());
  EXPECT_FALSE(q.has_room());
  q.completed(a->id, true);
  auto c = q.take();
  ASSERT_TRUE(c);
  EXPECT_EQ(c->message->payload, "2");
  EXPECT_EQ(q.counters().published[0], 1u);
}

TEST(OutboundQueue, FailedNoticeGoesBackToTheFront) {
  OutboundQueue q({1, 100});
  q.push(notice("alarms", "first"));
  q.push(notice("alarms", "second"));
  auto t = q.take();
  q.completed(t->id, false);
  auto again = q.take();
  ASSERT_TRUE(again);
  EXPECT_EQ(again->message->payload, "first");
  EXPECT_EQ(q.counters().retried, 1u);
  q.completed(again->id, true);
  q.completed(again->id, true);  // twice: ignored
  EXPECT_EQ(q.counters().published[0], 1u);
}

TEST(OutboundQueue, FailedRetainedValueNeverOvertakesANewerOne) {
  OutboundQueue q({4, 100});
  q.push(retained("confirm/a", "old"));
  auto t = q.take();
  q.push(retained("confirm/a", "new"));  // queued while the old one is in flight
  q.completed(t->id, false);             // the old one failed: it must not come back
  auto next = q.take();
  ASSERT_TRUE(next);
  EXPECT_EQ(next->message->payload, "new");
  EXPECT_FALSE(q.take());

  // Failed with nothing newer: it is sent again, first in its class.
  q.push(retained("confirm/b", "b"));
  q.completed(next->id, false);
  auto retry = q.take();
  ASSERT_TRUE(retry);
  EXPECT_EQ(retry->message->payload, "new");
}

TEST(OutboundQueue, NoticesBeyondTheBoundAreDroppedAndCounted) {
  OutboundQueue q({1, 3});
  for (int i = 0; i < 5; ++i) q.push(notice("alarms", std::to_string(i)));
  EXPECT_EQ(q.waiting(), 3u);
  EXPECT_EQ(q.counters().dropped[static_cast<std::size_t>(OutboundDrop::Overflow)], 2u);
  // Retained state is bounded by its topics, never dropped for room.
  for (int i = 0; i < 10; ++i) q.push(retained("confirm/" + std::to_string(i), "x"));
  EXPECT_EQ(q.waiting(), 13u);
  EXPECT_EQ(q.drop_waiting(OutboundDrop::Shutdown), 13u);
  EXPECT_EQ(q.counters().dropped_total(), 15u);
}

// A client that acknowledges only when told to, like a slow broker.
struct FakeClient {
  bool connected = true;
  std::map<std::uint64_t, OutboundMessage> pending;
  std::vector<OutboundMessage> delivered;
  OutboxClient client() {
    return {[this](std::uint64_t id, const OutboundMessage& m) {
              if (!connected) return false;
              pending.emplace(id, m);
              return true;
            },
            [this] { return connected; },
            [this](const OutboundMessage& m, std::chrono::milliseconds) {
              if (!connected) return false;
              delivered.push_back(m);
              return true;
            }};
  }
};

class MqttOutboxTest : public ::testing::Test {
 protected:
  boost::asio::io_context io;
  std::shared_ptr<spdlog::logger> log =
      std::make_shared<spdlog::logger>("test", std::make_shared<spdlog::sinks::null_sink_mt>());
  FakeClient fake;

  // Acknowledges the oldest pending message, as the broker would.
  void ack_one(MqttOutbox& box, bool ok = true) {
    ASSERT_FALSE(fake.pending.empty());
    auto it = fake.pending.begin();
    if (ok) fake.delivered.push_back(it->second);
    auto id = it->first;
    fake.pending.erase(it);
    box.on_published(id, ok);
  }
};

TEST_F(MqttOutboxTest, WindowOfOneDeliversEverythingInPriorityOrder) {
  MqttOutbox box(io, fake.client(), log, OutboxOptions{OutboundLimits{1, 100}});
  box.publish("snap/goal/1", "g1", true, OutboundPriority::Snapshot);  // goes at once: the window is empty
  for (int i = 0; i < 50; ++i)
    box.publish("confirm/" + std::to_string(i % 10), std::to_string(i), true, OutboundPriority::Confirm);
  box.publish("alarms", "alarm-1", false, OutboundPriority::Urgent);
  box.publish("snap/goal/1", "g2", true, OutboundPriority::Snapshot);
  box.publish("alarms", "alarm-2", false, OutboundPriority::Urgent);
  EXPECT_EQ(fake.pending.size(), 1u);
  while (!fake.pending.empty()) ack_one(box);
  std::vector<std::string> got;
  for (const auto& m : fake.delivered) got.push_back(m.topic + "=" + m.payload);
  std::vector<std::string> want = {"snap/goal/1=g1", "alarms=alarm-1", "alarms=alarm-2"};
  for (int i = 0; i < 10; ++i) want.push_back("confirm/" + std::to_string(i) + "=" + std::to_string(40 + i));
  want.push_back("snap/goal/1=g2");
  EXPECT_EQ(got, want);
  EXPECT_EQ(box.queue().counters().dropped_total(), 0u);
  EXPECT_EQ(box.queue().counters().coalesced, 40u);
}

TEST_F(MqttOutboxTest, WaitsWhileDisconnectedAndResendsWhatFailed) {
  MqttOutbox box(
      io, fake.client(), log,
      OutboxOptions{OutboundLimits{4, 100}, std::chrono::milliseconds(30'000), std::chrono::milliseconds(1)});
  box.start();
  box.publish("alarms", "a1", false, OutboundPriority::Urgent);
  box.publish("confirm/x", "5", true, OutboundPriority::Confirm);
  ASSERT_EQ(fake.pending.size(), 2u);
  // The connection drops: the client fails both.
  fake.connected = false;
  while (!fake.pending.empty()) ack_one(box, false);
  box.publish("confirm/x", "7", true, OutboundPriority::Confirm);  // newer value while away
  io.run_for(std::chrono::milliseconds(20));
  EXPECT_TRUE(fake.pending.empty());
  EXPECT_EQ(box.queue().waiting(), 2u);  // the alarm and the newest confirmation
  fake.connected = true;
  io.run_for(std::chrono::milliseconds(20));  // the retry timer pumps
  while (!fake.pending.empty()) ack_one(box);
  ASSERT_EQ(fake.delivered.size(), 2u);
  EXPECT_EQ(fake.delivered[0].payload, "a1");
  EXPECT_EQ(fake.delivered[1].payload, "7");
  box.stop(std::chrono::milliseconds(100));
}

TEST_F(MqttOutboxTest, AMessageNeverAcknowledgedIsSentAgain) {
  MqttOutbox box(io, fake.client(), log,
                 OutboxOptions{OutboundLimits{1, 100}, std::chrono::milliseconds(5), std::chrono::milliseconds(1)});
  box.start();
  box.publish("alarms", "a1", false, OutboundPriority::Urgent);
  ASSERT_EQ(fake.pending.size(), 1u);
  auto lost = fake.pending.begin()->first;
  fake.pending.clear();  // the client lost the token
  io.run_for(std::chrono::milliseconds(50));
  EXPECT_GE(box.stuck(), 1u);
  ASSERT_FALSE(fake.pending.empty());
  EXPECT_EQ(fake.pending.begin()->second.payload, "a1");
  box.on_published(lost, true);  // a late answer for the old ticket changes nothing
  EXPECT_EQ(box.queue().in_flight(), 1u);
  box.stop(std::chrono::milliseconds(100));
}

TEST_F(MqttOutboxTest, StopSendsWhatWaitsAndCountsTheRest) {
  MqttOutbox box(io, fake.client(), log, OutboxOptions{OutboundLimits{1, 100}});
  box.publish("alarms", "a1", false, OutboundPriority::Urgent);
  box.publish("alarms", "a2", false, OutboundPriority::Urgent);
  box.publish("confirm/x", "5", true, OutboundPriority::Confirm);
  box.stop(std::chrono::seconds(1));
  ASSERT_EQ(fake.delivered.size(), 2u);  // a1 was in flight: the client's disconnect finishes it
  EXPECT_EQ(fake.delivered[0].payload, "a2");
  EXPECT_EQ(fake.delivered[1].payload, "5");
  EXPECT_EQ(box.queue().counters().dropped_total(), 0u);

  box.publish("alarms", "late", false, OutboundPriority::Urgent);  // after stop: counted, not silent
  EXPECT_EQ(box.queue().counters().dropped[static_cast<std::size_t>(OutboundDrop::Shutdown)], 1u);
}

TEST_F(MqttOutboxTest, StopWhileDisconnectedCountsEverythingDropped) {
  MqttOutbox box(io, fake.client(), log, OutboxOptions{OutboundLimits{1, 100}});
  fake.connected = false;
  box.publish("alarms", "a1", false, OutboundPriority::Urgent);
  box.publish("confirm/x", "5", true, OutboundPriority::Confirm);
  box.stop(std::chrono::milliseconds(50));
  EXPECT_TRUE(fake.delivered.empty());
  EXPECT_EQ(box.queue().counters().dropped[static_cast<std::size_t>(OutboundDrop::Shutdown)], 2u);
}

}  // namespace
