// The catalogue's "targets" section (docs/strategy-progress.md, "Targets in the catalogue"):
// the shipped commitments load, a value target reads its figures and feeds assess_target, and
// every bad target, ratio or milestone is refused naming the file, the entry and the problem.
#include "progress/target_catalogue.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>

#include <fstream>

using namespace postwatch;
using namespace postwatch::aggregator;
using nlohmann::json;

namespace {

const IndicatorCatalogue& catalogue() { return test::shipped_catalogue(); }

// A ministry figure from 60 in 2019 to 40 by 2022: lower is better.
json migration_target() {
  return {{"id", "migration_down"},
          {"goal", 13},
          {"kind", "value"},
          {"commitment", "a figure down"},
          {"source", "a test"},
          {"indicator", "cyber_diplomacy_budget_meur"},
          {"baseline", {{"value", 60}, {"at", "2019-01-01"}}},
          {"target", {{"value", 40}, {"by", "2022-01-01"}}},
          {"milestones", {{{"at", "2020-01-01"}, {"value", 53}}}}};
}

json ratio_target(const std::string& id, const std::string& num, const std::string& den) {
  return {{"id", id},
          {"goal", 3},
          {"kind", "ratio"},
          {"commitment", "x"},
          {"source", "a test"},
          {"numerator", num},
          {"denominator", den},
          {"factor", 100},
          {"baseline_note", "not in the documents"},
          {"target", {{"value", 90}, {"better", "higher"}}}};
}

std::string error_of(const json& targets) {
  try {
    TargetCatalogue::parse(json{{"targets", targets}}, "t.json", catalogue());
  } catch (const CatalogueError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(TargetCatalogue, TheShippedCommitmentsLoad) {
  auto t = TargetCatalogue::load(test::catalogue_path(), catalogue());
  ASSERT_GE(t.targets().size(), 17u);
  // The commitments with a figure, followed through the ministry's indicators, without an
  // invented baseline.
  const auto* gdp = t.find("defence_spending_2_percent");
  ASSERT_NE(gdp, nullptr);
  EXPECT_EQ(gdp->indicator, "defence_spending_gdp_percent");
  EXPECT_EQ(gdp->target, 2.0);
  EXPECT_EQ(gdp->by_ms, *parse_date_ms("2024-12-31"));
  EXPECT_FALSE(gdp->baseline);
  EXPECT_NE(gdp->baseline_note.find("not in the documents"), std::string::npos);
  const auto* licences = t.find("arms_export_decided_in_time");
  ASSERT_NE(licences, nullptr);
  EXPECT_EQ(licences->kind, TargetKind::Ratio);
  EXPECT_EQ(licences->ratio.factor, 100);
  EXPECT_EQ(licences->by_ms, 0);  // ongoing
  ASSERT_NE(t.find("cyber_diplomacy_budget"), nullptr);
  const auto* npt = t.find("npt_review_conference");
  ASSERT_NE(npt, nullptr);
  EXPECT_EQ(npt->kind, TargetKind::Milestone);
  EXPECT_EQ(npt->state, MilestoneState::Postponed);
  EXPECT_EQ(npt->goal, 3);
  EXPECT_EQ(npt->due_ms, *parse_date_ms("2020-12-31"));
  EXPECT_EQ(t.find("inf_treaty")->state, MilestoneState::Cancelled);
  EXPECT_EQ(t.find("eu_cyber_sanctions")->threats, std::vector<std::string>{"cyber"});
  for (const auto& x : t.targets()) {
    EXPECT_FALSE(x.source.empty()) << x.id;
    EXPECT_FALSE(x.threats.empty() && x.goal != 11 && x.goal != 13) << x.id << " reports under no result area";
  }
}

TEST(TargetCatalogue, AValueTargetReadsItsFiguresAndFeedsTheArithmetic) {
  auto t = TargetCatalogue::parse(json{{"targets", {migration_target()}}}, "t.json", catalogue());
  const auto& m = t.targets().at(0);
  EXPECT_FALSE(m.higher_is_better);  // 40 below 60
  EXPECT_EQ(m.baseline->at_ms, *parse_date_ms("2019-01-01"));
  EXPECT_EQ(m.by_ms, *parse_date_ms("2022-01-01"));
  ASSERT_EQ(m.milestones.size(), 1u);
  // Goal 13's threats, as the catalogue lists them, when the target names none.
  EXPECT_FALSE(m.threats.empty());
  auto p = assess_target(m.spec(), std::vector<FigureReading>{{*parse_date_ms("2020-01-01"), 53}}, m.baseline->at_ms,
                         *parse_date_ms("2020-01-01"));
  EXPECT_NEAR(*p.progress, 7.0 / 20, 1e-9);
  EXPECT_EQ(p.status, Trajectory::OnTrack);  // -7 in a year where -6.5 a year is needed
  EXPECT_EQ(parse_date_ms("2024-02-30"), std::nullopt);
  EXPECT_EQ(parse_date_ms("1970-01-02"), 86'400'000);
}

TEST(TargetCatalogue, EveryBadTargetIsRefusedNamingTheEntry) {
  auto with = [](json t, const std::string& field, const json& value) {
    if (value.is_null())
      t.erase(field);
    else
      t[field] = value;
    return json::array({t});
  };
  const json base = migration_target();
  const json milestone{{"id", "npt"},          {"goal", 3},          {"kind", "milestone"},
                       {"commitment", "held"}, {"source", "a test"}, {"state", "planned"}};
  struct Case {
    json targets;
    std::string expected;
  } cases[] = {
      {with(base, "indicator", "gdp_share"), "t.json: targets[0] 'migration_down': unknown indicator 'gdp_share'"},
      {with(base, "indicator", "irregular_migration_pressure"),
       "indicator 'irregular_migration_pressure' is reported by the posts; a target follows a figure the ministry "
       "reports"},
      {json::array({ratio_target("r", "arms_export_licences_in_time", "hybrid_incidents")}),
       "targets[0] 'r': indicator 'hybrid_incidents' is reported by the posts"},
      {with(base, "goal", 14), "targets[0] 'migration_down': unknown goal 14"},
      {with(base, "commitment", nullptr), "targets[0] 'migration_down': missing field 'commitment'"},
      {with(base, "kind", "trend"), "'kind' must be value, ratio or milestone, not 'trend'"},
      {with(base, "id", "Migration Down"), "id may hold only a-z, 0-9 and _"},
      {with(base, "colour", "red"), "unknown field 'colour'"},
      {with(base, "threats", {"weather"}), "unknown threat \"weather\""},
      {with(base, "target", {{"value", 60}, {"by", "2022-01-01"}}), "the target equals the baseline"},
      {with(base, "target", {{"value", 40}, {"by", "2022-13-01"}}), "target: field 'by' must be a date YYYY-MM-DD"},
      {with(base, "target", {{"value", 40}, {"by", "2018-01-01"}}), "the target's date is not after the baseline's"},
      {with(base, "target", {{"value", 40}, {"better", "higher"}}),
       "'better' says higher but the target lies the other way"},
      {with(base, "baseline", nullptr), "no baseline: give one, or say why in 'baseline_note'"},
      {with(with(base, "baseline", nullptr)[0], "baseline_note", "not in the documents"),
       "without a baseline, say which way is better"},
      {with(base, "milestones", {{{"at", "2021-01-01"}, {"value", 50}}, {{"at", "2020-01-01"}, {"value", 55}}}),
       "milestones[1]: not after the one before"},
      {with(base, "milestones", {{{"at", "2023-01-01"}, {"value", 30}}}),
       "milestones[0]: must fall between the baseline and the target date"},
      {json::array({base, base}), "targets[1] 'migration_down': duplicate target id"},
      {json::array({ratio_target("in_time", "export_decided_in_time", "export_licences")}),
       "'export_decided_in_time' in the ratio is neither an indicator nor a target"},
      {with(ratio_target("in_time", "arms_export_licences_in_time", "arms_export_licences_decided"), "factor", 0),
       "'factor' must not be 0"},
      {json::array({ratio_target("a", "b", "arms_export_licences_decided"),
                    ratio_target("b", "a", "arms_export_licences_decided")}),
       "targets 'a': the ratio refers back to itself: a -> b -> a"},
      {json::array({ratio_target("self", "self", "arms_export_licences_decided")}),
       "the ratio refers back to itself: self -> self"},
      {json::array({ratio_target("r", "npt", "arms_export_licences_decided"), milestone}),
       "'npt' in the ratio is a milestone, not a figure"},
      {with(milestone, "state", "delayed"), "targets[0] 'npt': 'state' must be planned, done, postponed or cancelled"},
      {with(milestone, "target", {{"value", 1}}), "a milestone has a state, not 'target'"},
      {with(milestone, "due", "soon"), "field 'due' must be a date YYYY-MM-DD, not \"soon\""},
  };
  for (const auto& c : cases) {
    const auto e = error_of(c.targets);
    EXPECT_NE(e.find(c.expected), std::string::npos) << "expected: " << c.expected << "\n     got: " << e;
    EXPECT_EQ(e.rfind("t.json: ", 0), 0u) << e;
  }
  EXPECT_EQ(error_of(json::array(
                {ratio_target("in_time", "arms_export_licences_in_time", "arms_export_licences_decided"), milestone})),
            "");
}
