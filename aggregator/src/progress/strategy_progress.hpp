// Every strategy target assessed at one moment from the ministry's readings: what
// GET /api/v1/targets, a goal's progress, the retained progress snapshots and the report show
// (docs/strategy-progress.md). A pure function of the targets, the readings and the period, like
// GoalRollup, and never mixed into the operational status.
#pragma once

#include "progress/target_catalogue.hpp"
#include "progress/target_progress.hpp"

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace postwatch::aggregator {

// The readings of each ministry indicator, by indicator id, each in date order.
using ReadingSeries = std::map<std::string, std::vector<FigureReading>, std::less<>>;

// The interim report's kinds of result, which a target's status falls into: positive results
// (achieved, on track, done), lagging (improving too slowly, stagnating, a milestone past its
// date), moved away, and proved impossible (postponed, cancelled). Open: nothing to judge yet.
enum class ResultKind : std::uint8_t { Positive, Lagging, MovedAway, Impossible, Open };
inline constexpr std::size_t kResultKinds = 5;
std::string_view to_string(ResultKind k);  // "positive", "lagging", "moved_away", "impossible", "open"

struct TargetAssessment {
  const StrategyTarget* target = nullptr;
  // Value and ratio targets: the series followed (a ratio's computed from its parts), every date.
  std::vector<FigureReading> readings;
  TargetProgress progress;
  // The trajectory ("on_track", ...) of a figure; a milestone's state, or "overdue" for one still
  // planned after its date.
  std::string status;
  ResultKind result = ResultKind::Open;
};

// How many targets are in each status and each kind of result.
struct ProgressCounts {
  std::map<std::string, int> by_status;
  std::array<int, kResultKinds> by_result{};
  int targets = 0;
  void add(const TargetAssessment& a);
};

struct StrategyProgress {
  std::int64_t from_ms = 0, at_ms = 0;              // the period of the trends, and the moment assessed
  std::vector<TargetAssessment> targets;            // in catalogue order
  std::map<int, ProgressCounts> by_goal;            // every goal with a target
  std::map<std::string, ProgressCounts> by_threat;  // every result area with a target
  ProgressCounts all;
  const TargetAssessment* find(std::string_view id) const;
};

// The series a value or ratio target follows: a value target's indicator readings; a ratio's
// numerator / denominator × factor at every date either part has a reading, from the latest
// reading of each at that date (none before both have one, nor where the denominator is 0).
std::vector<FigureReading> target_series(const StrategyTarget& target, const TargetCatalogue& targets,
                                         const ReadingSeries& readings);

// Every target at `at_ms`, its trend over [from_ms, at_ms].
StrategyProgress assess_strategy(const TargetCatalogue& targets, const ReadingSeries& readings, std::int64_t from_ms,
                                 std::int64_t at_ms, const TrajectoryPolicy& policy = {});

}  // namespace postwatch::aggregator
