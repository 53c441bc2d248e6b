// Every target assessed at once (progress/strategy_progress.hpp): a ratio's series from its parts,
// milestones sorted into the interim report's kinds of result, and the counts per goal and
// result area, computed by hand.
#include "progress/strategy_progress.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>

using namespace postwatch;
using namespace postwatch::aggregator;
using nlohmann::json;

namespace {

const IndicatorCatalogue& catalogue() { return test::shipped_catalogue(); }

std::int64_t day(const char* date) { return *parse_date_ms(date); }

// The licences target as shipped (ongoing, more than 90 % in time), a value target on the budget
// and three milestones.
TargetCatalogue targets() {
  json t = json::array();
  t.push_back({{"id", "in_time"},
               {"goal", 3},
               {"kind", "ratio"},
               {"commitment", "decided in time"},
               {"source", "a test"},
               {"numerator", "arms_export_licences_in_time"},
               {"denominator", "arms_export_licences_decided"},
               {"factor", 100},
               {"baseline_note", "not in the documents"},
               {"target", {{"value", 90}, {"better", "higher"}}}});
  t.push_back({{"id", "budget"},
               {"goal", 4},
               {"kind", "value"},
               {"commitment", "EUR 5 m a year by 2022"},
               {"source", "a test"},
               {"indicator", "cyber_diplomacy_budget_meur"},
               {"baseline", {{"value", 1}, {"at", "2018-01-01"}}},
               {"target", {{"value", 5}, {"by", "2022-01-01"}}}});
  auto milestone = [](const char* id, int goal, const char* state, const char* due) {
    json m{{"id", id},         {"goal", goal},       {"kind", "milestone"},
           {"commitment", id}, {"source", "a test"}, {"state", state}};
    if (due) m["due"] = due;
    return m;
  };
  t.push_back(milestone("conference", 3, "planned", "2020-06-30"));
  t.push_back(milestone("framework", 6, "planned", nullptr));
  t.push_back(milestone("treaty", 3, "cancelled", nullptr));
  t.push_back(milestone("sanctions", 6, "done", "2019-12-31"));
  return TargetCatalogue::parse(json{{"targets", t}}, "t.json", catalogue());
}

}  // namespace

TEST(StrategyProgress, ARatioFollowsItsPartsFromTheLatestReadingOfEach) {
  const auto cat = targets();
  ReadingSeries r;
  // Decided: 100 by the end of Q1, 200 by Q2, 0 in Q3 (nothing decided), 50 in Q4.
  r["arms_export_licences_decided"] = {
      {day("2019-03-31"), 100}, {day("2019-06-30"), 200}, {day("2019-09-30"), 0}, {day("2019-12-31"), 50}};
  // In time: none reported for Q1 (before both parts have a reading: no ratio); Q2 given
  // before its total, so Q2's ratio appears at the total's date; Q4 given.
  r["arms_export_licences_in_time"] = {{day("2019-06-30"), 190}, {day("2019-12-31"), 40}};
  auto s = target_series(*cat.find("in_time"), cat, r);
  ASSERT_EQ(s.size(), 2u);  // Q1: no numerator yet; Q3: a zero denominator
  EXPECT_EQ(s[0].at_ms, day("2019-06-30"));
  EXPECT_DOUBLE_EQ(s[0].value, 95.0);  // 190 / 200 × 100
  EXPECT_EQ(s[1].at_ms, day("2019-12-31"));
  EXPECT_DOUBLE_EQ(s[1].value, 80.0);  // 40 / 50 × 100

  // Assessed at the end of 2019: 80 % against "more than 90", falling from 95: moving away.
  auto p = assess_strategy(cat, r, day("2018-01-01"), day("2020-01-01"));
  const auto* a = p.find("in_time");
  ASSERT_NE(a, nullptr);
  EXPECT_DOUBLE_EQ(*a->progress.current, 80.0);
  EXPECT_EQ(a->status, "moving_away");
  EXPECT_EQ(a->result, ResultKind::MovedAway);
  // Assessed in the middle of 2019, the later readings did not exist yet: 95 % meets the target.
  auto mid = assess_strategy(cat, r, day("2018-01-01"), day("2019-07-01"));
  EXPECT_EQ(mid.find("in_time")->status, "achieved");
  EXPECT_EQ(mid.find("in_time")->readings.size(), 1u);
}

TEST(StrategyProgress, MilestonesFallIntoTheInterimReportsKindsOfResult) {
  const auto cat = targets();
  auto before = assess_strategy(cat, {}, day("2018-01-01"), day("2020-06-30"));
  EXPECT_EQ(before.find("conference")->status, "planned");  // due that day: not overdue yet
  EXPECT_EQ(before.find("conference")->result, ResultKind::Open);
  auto after = assess_strategy(cat, {}, day("2018-01-01"), day("2020-07-01"));
  EXPECT_EQ(after.find("conference")->status, "overdue");
  EXPECT_EQ(after.find("conference")->result, ResultKind::Lagging);
  EXPECT_EQ(after.find("framework")->status, "planned");  // no date: never overdue
  EXPECT_EQ(after.find("treaty")->result, ResultKind::Impossible);
  EXPECT_EQ(after.find("sanctions")->result, ResultKind::Positive);
  // A figure without readings: no data, nothing to judge.
  EXPECT_EQ(after.find("budget")->status, "no_data");
  EXPECT_EQ(after.find("budget")->result, ResultKind::Open);
}

TEST(StrategyProgress, CountsEveryTargetUnderItsGoalAndEachOfItsResultAreas) {
  const auto cat = targets();
  ReadingSeries r;
  // The budget: 1 in 2018 (the baseline), 3 in 2020: the planned path to 5 in 2022.
  r["cyber_diplomacy_budget_meur"] = {{day("2020-01-01"), 3}};
  auto p = assess_strategy(cat, r, day("2018-01-01"), day("2020-01-01"));
  EXPECT_EQ(p.find("budget")->status, "on_track");
  EXPECT_EQ(p.all.targets, 6);
  EXPECT_EQ(p.all.by_result[static_cast<std::size_t>(ResultKind::Positive)], 2);  // budget, sanctions
  EXPECT_EQ(p.all.by_result[static_cast<std::size_t>(ResultKind::Impossible)], 1);
  EXPECT_EQ(p.all.by_result[static_cast<std::size_t>(ResultKind::Open)], 3);  // no data, two planned
  ASSERT_EQ(p.by_goal.count(3), 1u);
  EXPECT_EQ(p.by_goal.at(3).targets, 3);  // in_time, conference, treaty
  EXPECT_EQ(p.by_goal.at(3).by_status.at("cancelled"), 1);
  EXPECT_EQ(p.by_goal.count(5), 0u);  // no target: not listed
  // Each target counts under every result area of its goal (the catalogue's threats for it).
  for (const auto& [threat, counts] : p.by_threat) {
    int expected = 0;
    for (const auto& a : p.targets)
      expected += std::count(a.target->threats.begin(), a.target->threats.end(), threat) > 0;
    EXPECT_EQ(counts.targets, expected) << threat;
  }
  EXPECT_FALSE(p.by_threat.empty());
}
