// What the status board shows, for /metrics only: goal and pillar statuses, goal scores and
// the open alarms (feed/figures.hpp).
#include "feed/figures.hpp"

#include "feed/http_helpers.hpp"

#include <map>

namespace postwatch::aggregator {

namespace {
using L = MetricsText;

std::string goal_labels(const Goal& g) {
  return L::label("goal", std::to_string(g.id)) + "," + L::label("pillar", g.pillar);
}
}  // namespace

void add_status_figures(FigureRegistry& r, const IndicatorCatalogue& cat, const StatusBoard& board) {
  r.family("postwatch_goal_status", MetricKind::Gauge, "Shown goal status: 0 unknown, 1 green, 2 amber, 3 red.")
      .samples([&cat, &board](const FigureRegistry::Emit& emit) {
        for (std::size_t g = 0; g < cat.goals().size(); ++g)
          emit(goal_labels(cat.goals()[g]), static_cast<std::uint64_t>(board.goals()[g].shown));
      });
  r.family("postwatch_goal_score", MetricKind::Gauge,
           "Goal score, 0 (every indicator red) to 100 (at baseline); known goals.")
      .samples([&cat, &board](const FigureRegistry::Emit& emit) {
        for (std::size_t g = 0; g < cat.goals().size(); ++g)
          if (board.goals()[g].shown != Status::Unknown)
            emit(goal_labels(cat.goals()[g]), round2(board.goals()[g].score));
      });
  r.family("postwatch_pillar_status", MetricKind::Gauge, "Shown pillar status: 0 unknown, 1 green, 2 amber, 3 red.")
      .samples([&cat, &board](const FigureRegistry::Emit& emit) {
        for (std::size_t p = 0; p < cat.pillars().size(); ++p)
          emit(L::label("pillar", cat.pillars()[p].id), static_cast<std::uint64_t>(board.pillars()[p].shown));
      });
}

void add_alarm_figures(FigureRegistry& r, const StatusBoard& board) {
  r.family("postwatch_alarms_open", MetricKind::Gauge, "Open alarms by kind.")
      .samples([&board](const FigureRegistry::Emit& emit) {
        // Every kind shows, 0 included, so an alert rule never sees the series vanish.
        std::map<std::string_view, std::uint64_t> open_by_kind;
        for (auto k : kAlarmKinds) open_by_kind[to_string(k)] = 0;
        for (const auto& a : board.alarms())
          if (a.open()) open_by_kind[to_string(a.kind)] += 1;
        for (const auto& [kind, n] : open_by_kind) emit(L::label("kind", kind), n);
      });
  r.family("postwatch_alarms_unacknowledged", MetricKind::Gauge, "Open alarms nobody has acknowledged.")
      .sample("", [&board] {
        std::uint64_t unacked = 0;
        for (const auto& a : board.alarms()) unacked += a.open() && a.acked_at_ms == 0;
        return FigureValue(unacked);
      });
}

}  // namespace postwatch::aggregator
