// Progress toward a strategy target (docs/strategy-progress.md): where a commitment stands
// against its baseline and target, how fast it moves, how fast it would have to move to be
// met on time, and what that makes its trajectory. A pure function of the target, the readings
// and the time, like GoalRollup; never mixed into the operational (green/amber/red) status.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace postwatch::aggregator {

struct FigureReading {
  std::int64_t at_ms = 0;
  double value = 0;
};

// A commitment with a figure: where it stood, where it must be and by when. Which way is
// better follows from the target against the baseline; without a baseline it is said.
struct TargetSpec {
  std::optional<FigureReading> baseline;
  double target = 0;
  std::int64_t by_ms = 0;
  bool higher_is_better = true;
};

enum class Trajectory : std::uint8_t { NoData, Achieved, OnTrack, TooSlow, Stagnating, MovingAway };
// "no_data", "achieved", "on_track", "too_slow" (improving, too slowly), "stagnating", "moving_away"
std::string_view to_string(Trajectory t);

// Thresholds on the ratio of the observed slope to the required one, both taken in the
// target's direction (docs/strategy-progress.md, "The trajectory rule").
struct TrajectoryPolicy {
  double on_track = 0.95;   // at least this: on track (before the target date)
  double stagnating = 0.1;  // below this in size: stagnating; at or below its negative: moving away
};

struct TargetProgress {
  std::optional<double> current;            // the latest reading at or before now
  std::optional<double> progress;           // (current - baseline) / (target - baseline); 1 = met
  std::optional<double> trend_per_year;     // least-squares slope of the period's points
  std::optional<double> required_per_year;  // the slope that meets the target on time from now
  std::optional<double> ratio;              // trend / required
  Trajectory status = Trajectory::NoData;
  std::size_t points = 0;  // readings in the period, with the baseline if it falls in it
};

constexpr double kMsPerYear = 365.25 * 24 * 3600 * 1000;

// Least-squares slope of value over time, per year; nullopt with fewer than two distinct times.
std::optional<double> slope_per_year(std::span<const FigureReading> points);

// The target's progress at `now_ms`, its trend over the readings in [from_ms, now_ms] (sorted
// by time or not). Once the target date has passed, the required slope is the planned one
// (baseline to target), and a target not met is at best improving too slowly.
TargetProgress assess_target(const TargetSpec& target, std::span<const FigureReading> readings, std::int64_t from_ms,
                             std::int64_t now_ms, const TrajectoryPolicy& policy = {});

}  // namespace postwatch::aggregator
