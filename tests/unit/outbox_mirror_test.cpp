// The outbox with a mirror (docs/alerting.md, "In a cluster"), against an in-memory mirror:
// what is pending is mirrored and forgotten once delivered; a copy another instance took over
// is dropped, not delivered; orphans are taken over and delivered, unless another instance
// claimed them first.
#include "alerting/notification_outbox.hpp"
#include "alerting_support.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>

using namespace postwatch;
using namespace postwatch::aggregator;
using namespace postwatch::test;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

// The shared store as one instance sees it; the test thread looks in while the worker writes.
class MemoryMirror : public OutboxMirror {
 public:
  MirrorState put(const std::string& id, const PendingNotification& n) override {
    std::lock_guard lock(m_);
    if (taken_.count(id)) return MirrorState::TakenOver;
    mirrored_[id] = n.entries;
    return MirrorState::Ours;
  }
  MirrorState state(const std::string& id) override {
    std::lock_guard lock(m_);
    return taken_.count(id) ? MirrorState::TakenOver : mirrored_.count(id) ? MirrorState::Ours : MirrorState::Unknown;
  }
  void remove(const std::string& id) override {
    std::lock_guard lock(m_);
    mirrored_.erase(id);
  }
  std::vector<Orphan> orphans() override {
    std::lock_guard lock(m_);
    std::vector<Orphan> out;
    out.swap(orphans_);
    return out;
  }
  bool take(const Orphan& o) override {
    std::lock_guard lock(m_);
    taken_keys_.push_back(o.key);
    return o.revision != 0;  // revision 0: another instance claimed it first
  }

  void take_over(const std::string& id) {
    std::lock_guard lock(m_);
    taken_.insert(id);
  }
  void offer(Orphan o) {
    std::lock_guard lock(m_);
    orphans_.push_back(std::move(o));
  }
  std::map<std::string, std::string> mirrored() const {
    std::lock_guard lock(m_);
    return mirrored_;
  }
  std::vector<std::string> taken_keys() const {
    std::lock_guard lock(m_);
    return taken_keys_;
  }

 private:
  mutable std::mutex m_;
  std::map<std::string, std::string> mirrored_;  // by notification_id
  std::set<std::string> taken_;
  std::vector<Orphan> orphans_;
  std::vector<std::string> taken_keys_;
};

// An outbox with one channel "duty" that delivers while `up`, keeping what it delivered.
struct MirroredOutbox {
  ConfigDir d;
  std::shared_ptr<MemoryMirror> mirror = std::make_shared<MemoryMirror>();
  std::atomic<bool> up{false};
  std::mutex m;
  std::vector<json> delivered;
  std::unique_ptr<NotificationOutbox> outbox = std::make_unique<NotificationOutbox>(
      d.dir.path() / "notifications.sqlite",
      std::map<std::string, DeliverFn>{{"duty",
                                        [this](const std::string& body, std::int64_t) {
                                          if (!up) return DeliveryResult{false, "down"};
                                          std::lock_guard lock(m);
                                          delivered.push_back(json::parse(body));
                                          return DeliveryResult{true, ""};
                                        }}},
      OutboxTiming{50, 100, 600'000}, quiet_log(), mirror);
  std::size_t count() {
    std::lock_guard lock(m);
    return delivered.size();
  }
};

NotificationEntry raised(std::uint64_t alarm) {
  return {"duty", "duty/0", 0, json{{"id", alarm}, {"event", "raised"}}, false};
}

}  // namespace

TEST(MirroredOutbox, WhatIsPendingIsMirroredAndForgottenOnceDelivered) {
  MirroredOutbox o;
  o.outbox->enqueue(raised(7));
  ASSERT_TRUE(wait_until([&] { return o.mirror->mirrored().size() == 1; }, 5s));
  const auto [name, entries] = *o.mirror->mirrored().begin();
  EXPECT_NE(entries.find("\"id\":7"), std::string::npos);
  o.up = true;
  ASSERT_TRUE(wait_until([&] { return o.count() == 1 && o.outbox->figures().pending == 0; }, 5s));
  EXPECT_TRUE(wait_until([&] { return o.mirror->mirrored().empty(); }, 2s));
  // Mirrored under the name the receiver sees, unique to this outbox file.
  std::lock_guard lock(o.m);
  EXPECT_EQ(o.delivered[0]["notification_id"], name);
}

TEST(MirroredOutbox, ACopyTakenOverByAnotherInstanceIsDroppedNotDelivered) {
  MirroredOutbox o;
  o.outbox->enqueue(raised(7));
  ASSERT_TRUE(wait_until([&] { return o.mirror->mirrored().size() == 1; }, 5s));
  o.mirror->take_over(o.mirror->mirrored().begin()->first);
  o.up = true;
  ASSERT_TRUE(wait_until([&] { return o.outbox->figures().pending == 0; }, 5s));
  EXPECT_EQ(o.count(), 0u);
  EXPECT_EQ(o.outbox->figures().delivered, 0u);
}

TEST(MirroredOutbox, OrphansAreTakenOverAndDeliveredUnlessClaimedFirst) {
  MirroredOutbox o;
  o.up = true;
  PendingNotification n;
  n.channel = "duty";
  n.group_key = "duty/0";
  n.created_at_ms = 1'000;
  n.attempts = 3;
  n.entries = R"([{"id":9,"event":"raised"}])";
  o.mirror->offer({"agg-a.4", "agg-a", 12, n});
  n.entries = R"([{"id":10,"event":"raised"}])";
  o.mirror->offer({"agg-a.5", "agg-a", 0, n});  // another instance claims this one first
  ASSERT_TRUE(wait_until([&] { return o.count() == 1 && o.mirror->taken_keys().size() == 2; }, 5s));
  EXPECT_FALSE(wait_until([&] { return o.count() > 1; }, 1500ms));  // the claimed one never goes
  std::lock_guard lock(o.m);
  EXPECT_EQ(o.delivered[0]["alarms"][0]["id"], 9);
  EXPECT_EQ(o.delivered[0]["created_at_ms"], 1'000);
  EXPECT_EQ(o.outbox->figures().pending, 0u);
}
