#include "progress/target_progress.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

namespace postwatch::aggregator {

std::string_view to_string(Trajectory t) {
  switch (t) {
    case Trajectory::Achieved: return "achieved";
    case Trajectory::OnTrack: return "on_track";
    case Trajectory::TooSlow: return "too_slow";
    case Trajectory::Stagnating: return "stagnating";
    case Trajectory::MovingAway: return "moving_away";
    case Trajectory::NoData: break;
  }
  return "no_data";
}

std::optional<double> slope_per_year(std::span<const FigureReading> points) {
  if (points.size() < 2) return std::nullopt;
  // Centred on the first point's time, in years, so large epoch values do not cost precision.
  const auto t0 = points.front().at_ms;
  double mean_t = 0, mean_v = 0;
  for (const auto& p : points) {
    mean_t += static_cast<double>(p.at_ms - t0) / kMsPerYear;
    mean_v += p.value;
  }
  const auto n = static_cast<double>(points.size());
  mean_t /= n;
  mean_v /= n;
  double stt = 0, stv = 0;
  for (const auto& p : points) {
    const double dt = static_cast<double>(p.at_ms - t0) / kMsPerYear - mean_t;
    stt += dt * dt;
    stv += dt * (p.value - mean_v);
  }
  if (stt <= 0) return std::nullopt;
  return stv / stt;
}

TargetProgress assess_target(const TargetSpec& t, std::span<const FigureReading> readings, std::int64_t from_ms,
                             std::int64_t now_ms, const TrajectoryPolicy& policy) {
  TargetProgress out;
  std::vector<FigureReading> known(readings.begin(), readings.end());
  std::erase_if(known, [&](const FigureReading& r) { return r.at_ms > now_ms || !std::isfinite(r.value); });
  std::stable_sort(known.begin(), known.end(),
                   [](const FigureReading& a, const FigureReading& b) { return a.at_ms < b.at_ms; });
  if (known.empty()) return out;  // no data: nothing says where it stands
  const double current = known.back().value;
  out.current = current;
  if (t.baseline && t.target != t.baseline->value)
    out.progress = (current - t.baseline->value) / (t.target - t.baseline->value);

  const bool met = t.higher_is_better ? current >= t.target : current <= t.target;
  std::vector<FigureReading> points;
  if (t.baseline && t.baseline->at_ms >= from_ms && t.baseline->at_ms <= now_ms) points.push_back(*t.baseline);
  for (const auto& r : known)
    if (r.at_ms >= from_ms) points.push_back(r);
  std::stable_sort(points.begin(), points.end(),
                   [](const FigureReading& a, const FigureReading& b) { return a.at_ms < b.at_ms; });
  out.points = points.size();
  out.trend_per_year = slope_per_year(points);
  if (met) {
    out.status = Trajectory::Achieved;
    return out;
  }
  if (now_ms < t.by_ms) {
    out.required_per_year = (t.target - current) / (static_cast<double>(t.by_ms - now_ms) / kMsPerYear);
  } else if (t.baseline && t.by_ms > t.baseline->at_ms) {
    out.required_per_year =
        (t.target - t.baseline->value) / (static_cast<double>(t.by_ms - t.baseline->at_ms) / kMsPerYear);
  }
  if (!out.trend_per_year) return out;  // one point: where it stands, not where it goes
  const double better = t.higher_is_better ? 1.0 : -1.0;
  if (!out.required_per_year || *out.required_per_year * better <= 0) {
    // Past its date with nothing to scale by: only the direction says anything.
    const double d = *out.trend_per_year * better;
    out.status = d > 0 ? Trajectory::TooSlow : d < 0 ? Trajectory::MovingAway : Trajectory::Stagnating;
    return out;
  }
  const double r = *out.trend_per_year / *out.required_per_year;
  out.ratio = r;
  if (r >= policy.on_track && now_ms < t.by_ms)
    out.status = Trajectory::OnTrack;
  else if (r >= policy.stagnating)
    out.status = Trajectory::TooSlow;
  else if (r > -policy.stagnating)
    out.status = Trajectory::Stagnating;
  else
    out.status = Trajectory::MovingAway;
  return out;
}

}  // namespace postwatch::aggregator
