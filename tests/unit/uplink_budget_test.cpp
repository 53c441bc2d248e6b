// The uplink cap's token bucket (postwatch/agent/uplink_budget.hpp), on a clock the test moves.
#include "postwatch/agent/uplink_budget.hpp"

#include <gtest/gtest.h>

using namespace postwatch::agent;
using namespace std::chrono_literals;

namespace {
const UplinkBudget::Clock::time_point t0{std::chrono::seconds(1000)};
}

TEST(UplinkBudget, NoCapNeverWaitsButCounts) {
  UplinkBudget b(0, t0);
  EXPECT_FALSE(b.capped());
  EXPECT_EQ(b.delay(1'000'000, t0), 0ms);
  b.spend(1000, t0);
  b.spend(500, t0 + 1s);
  EXPECT_EQ(b.sent_bytes(), 1500u);
  EXPECT_EQ(b.take_rate(t0 + 2s), 750u);
  EXPECT_EQ(b.take_rate(t0 + 3s), 0u) << "a new window after each take";
}

TEST(UplinkBudget, SendsAtTheCapWhateverTheMessageSizes) {
  // 64 kbit/s = 8000 bytes/s; messages of 3000 bytes, each sent as soon as delay() allows.
  UplinkBudget b(8000, t0);
  auto now = t0;
  std::uint64_t sent = 0;
  while (now < t0 + 60s) {
    auto wait = b.delay(3000, now);
    if (wait.count() > 0) {
      now += wait;
      continue;
    }
    b.spend(3000, now);
    sent += 3000;
  }
  // One bucket's head start (a second's worth) on top of 60 s at the cap, at most.
  EXPECT_GE(sent, 60u * 8000 - 3000);
  EXPECT_LE(sent, 61u * 8000 + 3000);
}

TEST(UplinkBudget, AMessageLargerThanTheBucketGoesWhenItIsFullAndTheNextWaitsForTheDebt) {
  UplinkBudget b(1000, t0);
  EXPECT_EQ(b.delay(5000, t0), 0ms) << "a full bucket lets a large message go";
  b.spend(5000, t0);  // 4000 bytes overdrawn
  // 4 s to repay, 1 s more to afford 1000.
  EXPECT_EQ(b.delay(1000, t0), 5000ms);
  EXPECT_EQ(b.delay(1000, t0 + 4s), 1000ms);
  EXPECT_EQ(b.delay(1000, t0 + 5s), 0ms);
  // A quiet spell fills the bucket to one second's worth, no more.
  EXPECT_EQ(b.delay(1000, t0 + 1h), 0ms);
  b.spend(1000, t0 + 1h);
  EXPECT_EQ(b.delay(1, t0 + 1h), 1ms);
}

TEST(UplinkBudget, CountsMqttFraming) {
  // PUBLISH QoS 1: fixed header 1, remaining length 1-4 bytes, topic length 2, topic, packet id 2.
  EXPECT_EQ(mqtt_publish_bytes("a/b", 10, 1), 1u + 1 + 2 + 3 + 2 + 10);
  EXPECT_EQ(mqtt_publish_bytes("a/b", 10, 0), 1u + 1 + 2 + 3 + 10);
  EXPECT_EQ(mqtt_publish_bytes("t", 200, 1), 1u + 2 + 2 + 1 + 2 + 200);  // 205 needs two length bytes
}
