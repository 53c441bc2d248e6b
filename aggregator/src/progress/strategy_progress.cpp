#include "progress/strategy_progress.hpp"

#include <algorithm>
#include <set>

namespace postwatch::aggregator {

std::string_view to_string(ResultKind k) {
  switch (k) {
    case ResultKind::Positive: return "positive";
    case ResultKind::Lagging: return "lagging";
    case ResultKind::MovedAway: return "moved_away";
    case ResultKind::Impossible: return "impossible";
    case ResultKind::Open: break;
  }
  return "open";
}

void ProgressCounts::add(const TargetAssessment& a) {
  by_status[a.status] += 1;
  by_result[static_cast<std::size_t>(a.result)] += 1;
  targets += 1;
}

const TargetAssessment* StrategyProgress::find(std::string_view id) const {
  for (const auto& t : targets)
    if (t.target->id == id) return &t;
  return nullptr;
}

namespace {

std::vector<FigureReading> series_of(const std::string& part, const TargetCatalogue& targets,
                                     const ReadingSeries& readings, int depth) {
  if (const auto* t = targets.find(part)) {
    // The loader refuses cycles; the depth only guards a catalogue built by hand.
    if (depth > 16) return {};
    std::vector<FigureReading> out;
    if (t->kind == TargetKind::Value) {
      out = series_of(t->indicator, targets, readings, depth + 1);
    } else if (t->kind == TargetKind::Ratio) {
      const auto num = series_of(t->ratio.numerator, targets, readings, depth + 1);
      const auto den = series_of(t->ratio.denominator, targets, readings, depth + 1);
      std::set<std::int64_t> dates;
      for (const auto& r : num) dates.insert(r.at_ms);
      for (const auto& r : den) dates.insert(r.at_ms);
      auto latest = [](const std::vector<FigureReading>& s, std::int64_t at) -> const FigureReading* {
        auto it = std::upper_bound(s.begin(), s.end(), at,
                                   [](std::int64_t a, const FigureReading& r) { return a < r.at_ms; });
        return it == s.begin() ? nullptr : &*std::prev(it);
      };
      for (auto at : dates) {
        const FigureReading* n = latest(num, at);
        const FigureReading* d = latest(den, at);
        if (n && d && d->value != 0) out.push_back({at, n->value / d->value * t->ratio.factor});
      }
    }
    return out;
  }
  auto it = readings.find(part);
  if (it == readings.end()) return {};
  std::vector<FigureReading> out = it->second;
  std::stable_sort(out.begin(), out.end(),
                   [](const FigureReading& a, const FigureReading& b) { return a.at_ms < b.at_ms; });
  return out;
}

ResultKind result_of(Trajectory t) {
  switch (t) {
    case Trajectory::Achieved:
    case Trajectory::OnTrack: return ResultKind::Positive;
    case Trajectory::TooSlow:
    case Trajectory::Stagnating: return ResultKind::Lagging;
    case Trajectory::MovingAway: return ResultKind::MovedAway;
    case Trajectory::NoData: break;
  }
  return ResultKind::Open;
}

void assess_milestone(const StrategyTarget& t, std::int64_t at_ms, TargetAssessment& a) {
  a.status = std::string(to_string(t.state));
  switch (t.state) {
    case MilestoneState::Done: a.result = ResultKind::Positive; break;
    case MilestoneState::Postponed:
    case MilestoneState::Cancelled: a.result = ResultKind::Impossible; break;
    case MilestoneState::Planned:
      if (t.due_ms != 0 && at_ms > t.due_ms) {
        a.status = "overdue";
        a.result = ResultKind::Lagging;
      }
      break;
  }
}

}  // namespace

std::vector<FigureReading> target_series(const StrategyTarget& target, const TargetCatalogue& targets,
                                         const ReadingSeries& readings) {
  return series_of(target.id, targets, readings, 0);
}

StrategyProgress assess_strategy(const TargetCatalogue& targets, const ReadingSeries& readings, std::int64_t from_ms,
                                 std::int64_t at_ms, const TrajectoryPolicy& policy) {
  StrategyProgress out;
  out.from_ms = from_ms;
  out.at_ms = at_ms;
  for (const auto& t : targets.targets()) {
    TargetAssessment a;
    a.target = &t;
    if (t.kind == TargetKind::Milestone) {
      assess_milestone(t, at_ms, a);
    } else {
      a.readings = target_series(t, targets, readings);
      std::erase_if(a.readings, [&](const FigureReading& r) { return r.at_ms > at_ms; });  // as it stood then
      a.progress = assess_target(t.spec(), a.readings, from_ms, at_ms, policy);
      a.status = std::string(to_string(a.progress.status));
      a.result = result_of(a.progress.status);
    }
    out.targets.push_back(std::move(a));
  }
  for (const auto& a : out.targets) {
    out.all.add(a);
    out.by_goal[a.target->goal].add(a);
    for (const auto& th : a.target->threats) out.by_threat[th].add(a);
  }
  return out;
}

}  // namespace postwatch::aggregator
