// Rolls the per-post readings up to indicator, goal and pillar status
// (rules in docs/aggregator.md).
#pragma once

#include "postwatch/catalogue.hpp"
#include "rollup/indicator_state.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace postwatch::aggregator {

enum class Status : std::uint8_t { Unknown = 0, Green = 1, Amber = 2, Red = 3 };
std::string_view to_string(Status s);

// Status and severity (0 = baseline, 1 = at or beyond red) of one value.
Status classify(const Indicator& ind, double value);
double severity(const Indicator& ind, double value);

struct IndicatorRollup {
  std::uint32_t indicator = 0;
  Status status = Status::Unknown;  // worst over reporting posts
  double value = 0;                 // aggregated over posts by the indicator's rule
  double severity = 0;              // worst over reporting posts
  std::uint32_t posts_reporting = 0;
  std::uint32_t posts_red = 0, posts_amber = 0;
};

struct GoalRollupResult {
  int goal = 0;
  Status status = Status::Unknown;
  double score = 0;  // 100 = every indicator at baseline, 0 = every indicator red
  std::uint32_t indicators_reporting = 0;
  std::uint32_t posts_reporting = 0;
  std::vector<IndicatorRollup> indicators;  // the goal's indicators (weights in the catalogue)
};

struct PillarRollupResult {
  std::string pillar;
  Status status = Status::Unknown;
  double score = 0;
  std::uint32_t goals_known = 0;
};

struct RollupSnapshot {
  std::uint64_t state_version = 0;
  std::vector<IndicatorRollup> indicators;  // one per catalogue indicator
  std::vector<GoalRollupResult> goals;      // catalogue order
  std::vector<PillarRollupResult> pillars;  // catalogue order
};

class GoalRollup {
 public:
  explicit GoalRollup(const IndicatorCatalogue& catalogue) : catalogue_(catalogue) {}
  RollupSnapshot compute(const IndicatorState& state) const;

 private:
  const IndicatorCatalogue& catalogue_;
};

}  // namespace postwatch::aggregator
