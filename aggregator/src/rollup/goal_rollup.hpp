// Rolls the per-post values up to indicator, goal and pillar status: a pure
// function of the IndicatorState, the time and the previous cell statuses
// (for hysteresis). The rules are written out in docs/aggregator.md.
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
Status parse_status(std::string_view s);  // to_string's inverse; Unknown for anything else

// Status and severity (0 = baseline, 1 = at or beyond red) of one value.
Status classify(const Indicator& ind, double value);
double severity(const Indicator& ind, double value);
// With hysteresis: escalation at the thresholds; de-escalation only once the value is
// `band` (a fraction of the step below the threshold: red-amber, amber-baseline) clear of it.
Status classify(const Indicator& ind, double value, Status previous, double band);

// The score says the status on its own: red 0-30, amber 35-65, green 70-100. Within its band
// it is the weighted mean health (1 - severity) of the indicators with data, so a red goal
// with one bad indicator among good ones still scores below every amber goal.
double score_in_band(Status status, double health);     // 0 when unknown (never shown)
double health_from_score(Status status, double score);  // the inverse, for a restored board

struct RollupPolicy {
  double hysteresis_band = 0.1;
  double min_coverage = 0.5;  // below this share of a goal's posts reporting, green becomes unknown
};

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
  double health = 0;  // weighted mean of 1 - severity over the indicators with data (0..1)
  std::uint32_t indicators_reporting = 0;
  std::uint32_t posts_reporting = 0;  // posts with data for the goal that are not silent
  std::uint32_t posts_expected = 0;   // posts that ever reported data for the goal
  double coverage = 0;                // posts_reporting / posts_expected
  bool low_coverage = false;
  std::vector<IndicatorRollup> indicators;  // the goal's indicators (weights in the catalogue)
};

struct PillarRollupResult {
  std::string pillar;
  Status status = Status::Unknown;
  double health = 0;  // mean of its known goals' health
  std::uint32_t goals_known = 0;
};

struct RollupSnapshot {
  std::uint64_t state_version = 0;
  std::int64_t computed_at_ms = 0;
  std::vector<IndicatorRollup> indicators;  // one per catalogue indicator
  std::vector<GoalRollupResult> goals;      // catalogue order
  std::vector<PillarRollupResult> pillars;  // catalogue order
  std::vector<Status> cells;                // [post][indicator] status after hysteresis
  std::vector<double> values;               // [post][indicator] value used (window sum for counts)
};

class GoalRollup {
 public:
  explicit GoalRollup(const IndicatorCatalogue& catalogue, RollupPolicy policy = {});
  // `silent[p]` marks posts whose data no longer counts as current; `previous_cells`
  // (may be empty) holds the last statuses for hysteresis.
  RollupSnapshot compute(const IndicatorState& state, std::int64_t now_ms, const std::vector<bool>& silent = {},
                         const std::vector<Status>& previous_cells = {}) const;
  const RollupPolicy& policy() const { return policy_; }

 private:
  const IndicatorCatalogue& catalogue_;
  RollupPolicy policy_;
  // Per post: 1 for a post, 0 for the ministry, which reports national figures for strategy
  // targets and is not one of the posts a goal expects, whatever else its agent sends.
  std::vector<char> field_;
};

}  // namespace postwatch::aggregator
