#include "rollup/goal_rollup.hpp"
#include "rollup/indicator_state.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using namespace postwatch;
using namespace postwatch::aggregator;

namespace {

// Two goals in one pillar, three posts, three indicators with easy arithmetic.
const char* kCatalogue = R"({
  "goals": [{"id": 1, "pillar": "prevent", "name": "G1"}, {"id": 2, "pillar": "prevent", "name": "G2"}],
  "pillars": [{"id": "prevent", "name": "Prevent", "goals": [1, 2]}],
  "regions": [{"id": "r", "name": "R"}],
  "posts": [{"id": "p0", "city": "A", "country": "A", "region": "r"},
            {"id": "p1", "city": "B", "country": "B", "region": "r"},
            {"id": "p2", "city": "C", "country": "C", "region": "r"}],
  "indicators": [
    {"id": "lvl", "name": "Level", "kind": "level", "min": 1, "max": 5, "baseline": 1, "amber": 3, "red": 5,
     "direction": "higher_is_worse", "aggregation": "max", "window_s": 0, "goals": [{"goal": 1, "weight": 1.0}]},
    {"id": "cnt", "name": "Count", "kind": "count", "min": 0, "max": 1000, "baseline": 0, "amber": 5, "red": 10,
     "direction": "higher_is_worse", "aggregation": "sum", "window_s": 3600,
     "goals": [{"goal": 1, "weight": 0.5}, {"goal": 2, "weight": 1.0}]},
    {"id": "shr", "name": "Share", "kind": "share", "min": 0, "max": 100, "baseline": 100, "amber": 80, "red": 60,
     "direction": "lower_is_worse", "aggregation": "mean", "window_s": 0, "goals": [{"goal": 2, "weight": 1.0}]}
  ]})";

EventView ev(std::int64_t at, double v) {
  EventView e;
  e.observed_at_ms = at;
  e.number = v;
  return e;
}

}  // namespace

class RollupTest : public ::testing::Test {
 protected:
  IndicatorCatalogue cat = IndicatorCatalogue::parse(kCatalogue, "test");
  IndicatorState state{cat};
  GoalRollup rollup{cat};
};

TEST_F(RollupTest, EmptyStateIsUnknown) {
  auto s = rollup.compute(state, 100);
  ASSERT_EQ(s.goals.size(), 2u);
  EXPECT_EQ(s.goals[0].status, Status::Unknown);
  EXPECT_EQ(s.pillars[0].status, Status::Unknown);
  EXPECT_EQ(s.goals[0].indicators_reporting, 0u);
}

TEST_F(RollupTest, ClassifyAndSeverityFollowThresholds) {
  const auto& lvl = cat.indicators()[0];
  EXPECT_EQ(classify(lvl, 1), Status::Green);
  EXPECT_EQ(classify(lvl, 3), Status::Amber);
  EXPECT_EQ(classify(lvl, 5), Status::Red);
  EXPECT_DOUBLE_EQ(severity(lvl, 1), 0.0);
  EXPECT_DOUBLE_EQ(severity(lvl, 3), 0.5);
  EXPECT_DOUBLE_EQ(severity(lvl, 5), 1.0);
  const auto& shr = cat.indicators()[2];
  EXPECT_EQ(classify(shr, 90), Status::Green);
  EXPECT_EQ(classify(shr, 80), Status::Amber);
  EXPECT_EQ(classify(shr, 50), Status::Red);
  EXPECT_DOUBLE_EQ(severity(shr, 80), 0.5);
  EXPECT_DOUBLE_EQ(severity(shr, 40), 1.0);
}

TEST_F(RollupTest, AggregatesAcrossPostsAndWeighsGoals) {
  state.apply(0, 0, ev(10, 2), 10);  // lvl p0 = 2 (sev .25, green)
  state.apply(1, 0, ev(10, 3), 10);  // lvl p1 = 3 (sev .5, amber)
  state.apply(0, 1, ev(10, 2), 10);  // cnt p0 = 2
  state.apply(2, 1, ev(10, 4), 10);  // cnt p2 = 4 (sev .4, green)
  state.apply(0, 2, ev(10, 90), 10);
  state.apply(1, 2, ev(10, 70), 10);  // shr mean 80; p1 sev .75 amber
  auto s = rollup.compute(state, 100);

  const auto& lvl = s.indicators[0];
  EXPECT_EQ(lvl.value, 3);  // max
  EXPECT_EQ(lvl.status, Status::Amber);
  EXPECT_EQ(lvl.posts_reporting, 2u);
  EXPECT_DOUBLE_EQ(lvl.severity, 0.5);
  EXPECT_EQ(s.indicators[1].value, 6);   // sum
  EXPECT_EQ(s.indicators[2].value, 80);  // mean
  EXPECT_DOUBLE_EQ(s.indicators[2].severity, 0.75);

  // Goal 1: lvl (w 1, sev .5) and cnt (w .5, sev .4): health = 1 - (.5 + .2) / 1.5
  EXPECT_NEAR(s.goals[0].health, 1 - 0.7 / 1.5, 1e-9);
  EXPECT_EQ(s.goals[0].status, Status::Amber);
  EXPECT_EQ(s.goals[0].posts_reporting, 3u);
  // Goal 2: cnt (w 1, sev .4), shr (w 1, sev .75): health = 1 - 1.15 / 2
  EXPECT_NEAR(s.goals[1].health, 1 - 1.15 / 2, 1e-9);
  EXPECT_NEAR(s.pillars[0].health, (s.goals[0].health + s.goals[1].health) / 2, 1e-9);
  EXPECT_EQ(s.pillars[0].status, Status::Amber);

  state.apply(2, 0, ev(11, 5), 11);  // one post red turns goal 1 and the pillar red
  s = rollup.compute(state, 100);
  EXPECT_EQ(s.goals[0].status, Status::Red);
  EXPECT_EQ(s.goals[1].status, Status::Amber);
  EXPECT_EQ(s.pillars[0].status, Status::Red);
}

TEST_F(RollupTest, LatestObservationWinsWhateverTheArrivalOrder) {
  EXPECT_TRUE(state.apply(0, 0, ev(200, 4), 1));
  EXPECT_FALSE(state.apply(0, 0, ev(100, 1), 2));  // older observation arrives later
  EXPECT_EQ(state.at(0, 0).number, 4);
  EXPECT_TRUE(state.apply(0, 0, ev(300, 2), 3));
  EXPECT_EQ(state.at(0, 0).number, 2);
  EXPECT_EQ(state.post_last_seen_ms(0), 3);
}

TEST(GoalRollupMinistry, TheMinistryIsNotAPostAGoalExpectsAndItsFiguresFeedNoGoal) {
  // The catalogue above with the ministry as a fourth "post" and one figure it reports.
  auto j = nlohmann::json::parse(kCatalogue);
  j["posts"].push_back({{"id", "hq"}, {"kind", "ministry"}, {"city", "H"}, {"country", "H"}, {"region", "r"}});
  j["indicators"].push_back(
      {{"id", "budget"}, {"name", "Budget"}, {"kind", "gauge"}, {"reported_by", "ministry"}, {"min", 0}, {"max", 100}});
  auto cat = IndicatorCatalogue::parse(j.dump(), "test");
  IndicatorState state(cat);
  GoalRollup rollup(cat);
  state.apply(0, 0, ev(10, 2), 10);   // p0: lvl green
  state.apply(3, 0, ev(10, 5), 10);   // the ministry's agent reports a red level: not a post's signal
  state.apply(3, 3, ev(10, 42), 10);  // and its figure
  auto s = rollup.compute(state, 100);
  EXPECT_EQ(s.goals[0].status, Status::Green);
  EXPECT_EQ(s.goals[0].posts_expected, 1u);
  EXPECT_EQ(s.indicators[0].posts_reporting, 1u);
  EXPECT_EQ(s.indicators[3].posts_reporting, 0u);  // a figure is not rolled up
  EXPECT_EQ(s.indicators[3].status, Status::Unknown);
}

// Hand-computed: the score lies in its status's band (red 0-30, amber 35-65, green 70-100),
// placed by the weighted mean health. A score alone says the status.
TEST(GoalScore, LiesInTheBandOfItsStatus) {
  struct Case {
    Status status;
    double health, score;
  };
  const Case cases[] = {
      {Status::Green, 1.0, 100}, {Status::Green, 0.8, 94},  {Status::Green, 0.0, 70},  {Status::Amber, 1.0, 65},
      {Status::Amber, 0.5, 50},  {Status::Amber, 0.0, 35},  {Status::Red, 0.9, 27},    {Status::Red, 0.0, 0},
      {Status::Red, 1.0, 30},    {Status::Unknown, 0.7, 0}, {Status::Green, 1.7, 100}, {Status::Red, -0.2, 0},
  };
  for (const auto& c : cases) {
    double score = score_in_band(c.status, c.health);
    EXPECT_NEAR(score, c.score, 1e-9) << to_string(c.status) << " health " << c.health;
    if (c.status != Status::Unknown && c.health >= 0 && c.health <= 1) {
      EXPECT_NEAR(health_from_score(c.status, score), c.health, 1e-9);
    }
  }
  // The issue's case: a green goal at health .5 against amber goals at health .95.
  EXPECT_GT(score_in_band(Status::Green, 0.5), score_in_band(Status::Amber, 0.95));
  EXPECT_GT(score_in_band(Status::Amber, 0.0), score_in_band(Status::Red, 1.0));
}
