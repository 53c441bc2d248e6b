#include "postwatch/agent/confirm_stall.hpp"

#include <gtest/gtest.h>

using postwatch::agent::ConfirmStall;
using namespace std::chrono_literals;

namespace {
const ConfirmStall::Clock::time_point t0{std::chrono::hours(1)};
}

TEST(ConfirmStall, NothingWaitingIsNeverDue) {
  ConfirmStall s(15s, 300s);
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(s.due(t0 + i * 10s, false, 0));
}

TEST(ConfirmStall, DueAfterTheFirstWaitThenBacksOffToTheLongest) {
  ConfirmStall s(15s, 60s);
  EXPECT_FALSE(s.due(t0, true, 5));
  EXPECT_FALSE(s.due(t0 + 14s, true, 5));
  EXPECT_TRUE(s.due(t0 + 15s, true, 5));
  EXPECT_EQ(s.waited(), 15s);
  EXPECT_FALSE(s.due(t0 + 44s, true, 5));  // now 30 s
  EXPECT_TRUE(s.due(t0 + 45s, true, 5));
  EXPECT_EQ(s.waited(), 30s);
  EXPECT_TRUE(s.due(t0 + 105s, true, 5));  // 60 s
  EXPECT_TRUE(s.due(t0 + 165s, true, 5));  // capped at 60 s
  EXPECT_EQ(s.waited(), 60s);
}

TEST(ConfirmStall, AConfirmationThatMovesStartsTheWaitOver) {
  ConfirmStall s(15s, 300s);
  EXPECT_FALSE(s.due(t0, true, 5));
  EXPECT_TRUE(s.due(t0 + 15s, true, 5));
  EXPECT_FALSE(s.due(t0 + 20s, true, 9));  // progress: back to 15 s from here
  EXPECT_FALSE(s.due(t0 + 34s, true, 9));
  EXPECT_TRUE(s.due(t0 + 35s, true, 9));
  EXPECT_EQ(s.waited(), 15s);
}

TEST(ConfirmStall, ResetAfterAReconnectStartsOver) {
  ConfirmStall s(15s, 300s);
  EXPECT_FALSE(s.due(t0, true, 5));
  EXPECT_TRUE(s.due(t0 + 15s, true, 5));
  s.reset();
  EXPECT_FALSE(s.due(t0 + 40s, true, 5));  // the clock starts here
  EXPECT_FALSE(s.due(t0 + 54s, true, 5));
  EXPECT_TRUE(s.due(t0 + 55s, true, 5));
}
