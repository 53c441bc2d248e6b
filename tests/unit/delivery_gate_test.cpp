// DeliveryGate alone: when Paho's delivery thread waits, when it goes on, and that a Paho call
// from another thread is never let in while it waits (docs/aggregator.md §7).
#include "ingest/delivery_gate.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <thread>

using namespace postwatch::aggregator;
using postwatch::test::wait_until;

namespace {

std::shared_ptr<spdlog::logger> quiet() {
  return std::make_shared<spdlog::logger>("gate", std::make_shared<spdlog::sinks::null_sink_mt>());
}

// Whether a call from outside would be refused now (the delivery thread waits in admit()).
// Not a probe to wait with: a call made just as admit() starts keeps the gate open.
bool gate_closed(DeliveryGate& gate) {
  DeliveryGate::OutsideCall call(gate);
  return !call.ok();
}

}  // namespace

TEST(DeliveryGate, ClosesAtTheBoundAndOpensAtHalfOfIt) {
  DeliveryGate gate({8, {}, std::chrono::seconds(60)}, quiet());
  for (int i = 0; i < 7; ++i) {
    gate.admit();  // below the bound: no wait
    gate.queued_one();
  }
  EXPECT_EQ(gate.stats().pauses, 0u);
  gate.admit();
  gate.queued_one();  // 8 queued: the next message waits
  std::atomic<bool> admitted{false};
  std::thread delivery([&] {
    gate.admit();
    admitted = true;
  });
  ASSERT_TRUE(wait_until([&] { return gate.stats().pauses == 1; }, std::chrono::seconds(10)));
  for (int i = 0; i < 3; ++i) gate.handled();  // 5 queued: still above half
  EXPECT_FALSE(admitted.load());
  EXPECT_TRUE(gate_closed(gate));
  gate.handled();  // 4 queued: half, the gate opens
  delivery.join();
  EXPECT_TRUE(admitted.load());
  EXPECT_FALSE(gate_closed(gate));
  auto s = gate.stats();
  EXPECT_EQ(s.pauses, 1u);
  EXPECT_EQ(s.queued_messages, 4u);
  EXPECT_EQ(s.overrides, 0u);
}

TEST(DeliveryGate, AStoreThatIsBehindClosesItWhateverIsQueued) {
  std::atomic<bool> behind{true};
  DeliveryGate gate({4096, [&] { return behind.load(); }, std::chrono::seconds(60)}, quiet());
  std::thread delivery([&] { gate.admit(); });
  ASSERT_TRUE(wait_until([&] { return gate.stats().pauses == 1; }, std::chrono::seconds(10)));
  behind = false;
  delivery.join();
  EXPECT_EQ(gate.stats().pauses, 1u);
}

TEST(DeliveryGate, APauseLongerThanMaxPauseOpensItUntilTheBacklogIsGone) {
  std::atomic<bool> behind{true};
  DeliveryGate gate({4096, [&] { return behind.load(); }, std::chrono::milliseconds(50)}, quiet());
  gate.admit();  // returns after max_pause, the store still behind
  EXPECT_EQ(gate.stats().overrides, 1u);
  gate.admit();  // open while overridden: no second pause
  EXPECT_EQ(gate.stats().pauses, 1u);
  EXPECT_GE(gate.stats().paused_ms, 50u);
  behind = false;
  gate.admit();  // pressure gone: the override ends
  behind = true;
  gate.admit();  // and the next pressure pauses again
  EXPECT_EQ(gate.stats().pauses, 2u);
}

TEST(DeliveryGate, ACallFromOutsideKeepsItOpenAndReleaseEndsAWait) {
  DeliveryGate gate({1, {}, std::chrono::seconds(60)}, quiet());
  gate.queued_one();
  {
    DeliveryGate::OutsideCall call(gate);  // a Paho call on its way in
    ASSERT_TRUE(call.ok());
    gate.admit();  // must not wait: that call would block on Paho's mutex
    EXPECT_EQ(gate.stats().pauses, 0u);
  }
  std::thread delivery([&] { gate.admit(); });
  ASSERT_TRUE(wait_until([&] { return gate.stats().pauses == 1; }, std::chrono::seconds(10)));
  gate.release();  // stop: a paused delivery thread must not hold up the disconnect
  delivery.join();
  gate.admit();  // released: never waits again
  EXPECT_EQ(gate.stats().pauses, 1u);
}
