// The agent's urgent lane (postwatch/agent/urgent_lane.hpp) and the catalogue's urgency rule.
#include "postwatch/agent/urgent_lane.hpp"
#include "postwatch/catalogue.hpp"

#include "support/test_support.hpp"

#include <gtest/gtest.h>

using namespace postwatch;
using namespace postwatch::agent;

namespace {
IndicatorEvent at(std::uint64_t seq) {
  IndicatorEvent e;
  e.seq = seq;
  e.indicator = "terrorism_threat_level";
  e.number = 5;
  return e;
}
std::vector<std::uint64_t> seqs(const std::vector<IndicatorEvent>& v) {
  std::vector<std::uint64_t> out;
  for (const auto& e : v) out.push_back(e.seq);
  return out;
}
}  // namespace

TEST(UrgentLane, TakesOnlyWhatTheMainLaneWillNotReachInItsNextBatch) {
  UrgentLane lane;
  for (std::uint64_t s : {120, 5000, 5001, 9000}) ASSERT_TRUE(lane.offer(at(s)));
  // Main cursor at 100, batches of 500: seq 120 goes with the next main batch.
  auto batch = lane.take(100 + 500, 64);
  EXPECT_EQ(seqs(batch), (std::vector<std::uint64_t>{5000, 5001, 9000}));
  EXPECT_EQ(lane.waiting(), 1u);
  EXPECT_EQ(lane.ahead(), 4u) << "in flight counts as ahead";
  lane.sent(batch);
  EXPECT_TRUE(lane.skips(5000));
  EXPECT_TRUE(lane.skips(9000));
  EXPECT_FALSE(lane.skips(120)) << "never sent on the urgent lane: the main lane sends it";
  lane.passed(5001);  // the main lane's cursor went past 120, 5000
  EXPECT_EQ(lane.waiting(), 0u);
  EXPECT_FALSE(lane.skips(5000)) << "below the cursor: forgotten";
  EXPECT_TRUE(lane.skips(5001));
  EXPECT_EQ(lane.ahead(), 2u);
}

TEST(UrgentLane, ABatchThatDidNotMakeItGoesBackToTheFrontInSeqOrder) {
  UrgentLane lane;
  for (std::uint64_t s : {1000, 1001, 1002}) lane.offer(at(s));
  auto first = lane.take(0, 2);
  ASSERT_EQ(seqs(first), (std::vector<std::uint64_t>{1000, 1001}));
  lane.offer(at(1003));
  lane.returned(std::move(first));  // the connection dropped
  EXPECT_EQ(seqs(lane.take(0, 64)), (std::vector<std::uint64_t>{1000, 1001, 1002, 1003}));
  EXPECT_FALSE(lane.skips(1000));
}

TEST(UrgentLane, AResendForgetsWhatWasSkipped) {
  UrgentLane lane;
  lane.offer(at(700));
  auto b = lane.take(0, 64);
  lane.sent(b);
  ASSERT_TRUE(lane.skips(700));
  lane.forget_sent();  // the aggregator asked for a resend: the broker may have lost seq 700
  EXPECT_FALSE(lane.skips(700));
}

TEST(UrgentLane, IsBoundedAndCountsWhatItLeavesToTheSpool) {
  UrgentLane lane;
  for (std::uint64_t s = 1; s <= UrgentLane::kMaxAhead; ++s) ASSERT_TRUE(lane.offer(at(s)));
  EXPECT_FALSE(lane.offer(at(UrgentLane::kMaxAhead + 1)));
  EXPECT_EQ(lane.overflowed(), 1u);
  auto b = lane.take(0, 64);
  lane.sent(b);
  EXPECT_FALSE(lane.offer(at(UrgentLane::kMaxAhead + 2))) << "sent but not yet passed still counts";
  lane.passed(65);
  EXPECT_TRUE(lane.offer(at(UrgentLane::kMaxAhead + 3)));
}

TEST(Urgency, TheCatalogueSaysWhichReadingsAreUrgent) {
  auto cat = IndicatorCatalogue::load(test::catalogue_path());
  const Indicator* threat = cat.find_indicator("terrorism_threat_level");
  ASSERT_NE(threat, nullptr);
  EXPECT_TRUE(threat->is_urgent(1)) << "always";
  const Indicator* posture = cat.find_indicator("post_security_posture");
  ASSERT_NE(posture, nullptr);
  EXPECT_FALSE(posture->is_urgent(posture->red - 1));
  EXPECT_TRUE(posture->is_urgent(posture->red)) << "at red";
  const Indicator* plain = cat.find_indicator("drug_seizures");
  ASSERT_NE(plain, nullptr);
  EXPECT_FALSE(plain->is_urgent(plain->max)) << "not marked";

  Indicator lower;
  lower.direction = Direction::LowerIsWorse;
  lower.red = 10;
  lower.urgent = Urgency::AtRed;
  EXPECT_TRUE(lower.is_urgent(9));
  EXPECT_FALSE(lower.is_urgent(11));
}
