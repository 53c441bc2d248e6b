// The strategy's commitments, as the catalogue's "targets" section describes them
// (docs/strategy-progress.md, "Targets in the catalogue"). Read by the aggregator only: agents
// load the same file and skip the section. Checked once at start like the rest of the
// catalogue: a problem names the file, the entry and what is wrong (CatalogueError).
#pragma once

#include "postwatch/catalogue.hpp"
#include "progress/target_progress.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace postwatch::aggregator {

enum class TargetKind : std::uint8_t { Value, Ratio, Milestone };
enum class MilestoneState : std::uint8_t { Planned, Done, Postponed, Cancelled };
std::string_view to_string(TargetKind k);
std::string_view to_string(MilestoneState s);

// numerator / denominator × factor (DHIS2's indicator formula); each side an indicator id or
// another value or ratio target's id.
struct RatioFormula {
  std::string numerator, denominator;
  double factor = 1;
};

struct StrategyTarget {
  std::string id;
  int goal = 0;
  std::vector<std::string> threats;  // the result areas it is reported under
  std::string commitment, source, unit;
  TargetKind kind = TargetKind::Value;

  // Value and ratio targets.
  std::string indicator;  // value: the indicator whose readings it follows
  RatioFormula ratio;
  std::optional<FigureReading> baseline;
  std::string baseline_note;  // why there is no baseline ("not in the documents"); required then
  std::optional<double> target;
  std::int64_t by_ms = 0;  // 0: no date (ongoing)
  bool higher_is_better = true;
  std::vector<FigureReading> milestones;  // dated intermediate values, in date order

  // Milestone targets: an event that is planned, done, postponed or cancelled.
  std::int64_t due_ms = 0;  // 0: no date
  MilestoneState state = MilestoneState::Planned;
  std::string state_note;  // where the documents stand on it

  // For assess_target; only for value and ratio targets with a target value.
  TargetSpec spec() const;
};

class TargetCatalogue {
 public:
  // The "targets" section of the catalogue file (none: an empty catalogue of targets).
  static TargetCatalogue load(const std::filesystem::path& file, const IndicatorCatalogue& catalogue);
  static TargetCatalogue parse(const nlohmann::json& root, const std::string& origin,
                               const IndicatorCatalogue& catalogue);

  const std::vector<StrategyTarget>& targets() const { return targets_; }
  const StrategyTarget* find(std::string_view id) const;

 private:
  std::vector<StrategyTarget> targets_;
};

// "2024-12-31" as ms since the epoch (UTC midnight); nullopt if it is not such a date.
std::optional<std::int64_t> parse_date_ms(std::string_view date);

}  // namespace postwatch::aggregator
