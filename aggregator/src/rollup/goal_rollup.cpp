#include "rollup/goal_rollup.hpp"

#include <algorithm>
#include <set>

namespace postwatch::aggregator {

std::string_view to_string(Status s) {
  switch (s) {
    case Status::Unknown: return "unknown";
    case Status::Green: return "green";
    case Status::Amber: return "amber";
    case Status::Red: return "red";
  }
  return "unknown";
}

Status classify(const Indicator& ind, double v) {
  if (ind.direction == Direction::HigherIsWorse) {
    if (v >= ind.red) return Status::Red;
    if (v >= ind.amber) return Status::Amber;
    return Status::Green;
  }
  if (v <= ind.red) return Status::Red;
  if (v <= ind.amber) return Status::Amber;
  return Status::Green;
}

double severity(const Indicator& ind, double v) {
  double s = ind.direction == Direction::HigherIsWorse ? (v - ind.baseline) / (ind.red - ind.baseline)
                                                       : (ind.baseline - v) / (ind.baseline - ind.red);
  return std::clamp(s, 0.0, 1.0);
}

RollupSnapshot GoalRollup::compute(const IndicatorState& state) const {
  RollupSnapshot snap;
  snap.state_version = state.version();
  const auto& inds = catalogue_.indicators();
  snap.indicators.resize(inds.size());
  for (std::uint32_t i = 0; i < inds.size(); ++i) {
    const Indicator& ind = inds[i];
    IndicatorRollup& r = snap.indicators[i];
    r.indicator = i;
    if (ind.kind == ValueKind::Text) continue;  // shown, never rolled up
    double sum = 0;
    for (std::uint32_t p = 0; p < state.post_count(); ++p) {
      const Reading& rd = state.at(p, i);
      if (!rd.present) continue;
      Status st = classify(ind, rd.number);
      if (r.posts_reporting == 0)
        r.value = rd.number;
      else if (ind.aggregation == Aggregation::Max)
        r.value = std::max(r.value, rd.number);
      else if (ind.aggregation == Aggregation::Min)
        r.value = std::min(r.value, rd.number);
      sum += rd.number;
      r.posts_reporting += 1;
      r.status = std::max(r.status, st);
      r.severity = std::max(r.severity, severity(ind, rd.number));
      r.posts_red += st == Status::Red;
      r.posts_amber += st == Status::Amber;
    }
    if (r.posts_reporting > 0 && ind.aggregation == Aggregation::Sum) r.value = sum;
    if (r.posts_reporting > 0 && ind.aggregation == Aggregation::Mean) r.value = sum / r.posts_reporting;
  }

  std::vector<std::set<std::uint32_t>> goal_posts(catalogue_.goals().size());
  for (std::size_t g = 0; g < catalogue_.goals().size(); ++g) {
    GoalRollupResult gr;
    gr.goal = catalogue_.goals()[g].id;
    double weighted = 0, weights = 0;
    for (std::uint32_t i = 0; i < inds.size(); ++i) {
      for (const auto& gw : inds[i].goals) {
        if (gw.goal != gr.goal) continue;
        const IndicatorRollup& r = snap.indicators[i];
        gr.indicators.push_back(r);
        if (r.posts_reporting == 0 || inds[i].kind == ValueKind::Text) continue;
        gr.indicators_reporting += 1;
        weighted += gw.weight * r.severity;
        weights += gw.weight;
        gr.status = std::max(gr.status, r.status);
        for (std::uint32_t p = 0; p < state.post_count(); ++p)
          if (state.at(p, i).present) goal_posts[g].insert(p);
      }
    }
    gr.posts_reporting = static_cast<std::uint32_t>(goal_posts[g].size());
    gr.score = weights > 0 ? 100.0 * (1.0 - weighted / weights) : 0;
    snap.goals.push_back(std::move(gr));
  }

  for (const auto& pillar : catalogue_.pillars()) {
    PillarRollupResult pr;
    pr.pillar = pillar.id;
    double total = 0;
    for (const auto& gr : snap.goals) {
      if (std::find(pillar.goals.begin(), pillar.goals.end(), gr.goal) == pillar.goals.end()) continue;
      if (gr.status == Status::Unknown) continue;
      pr.status = std::max(pr.status, gr.status);
      total += gr.score;
      pr.goals_known += 1;
    }
    pr.score = pr.goals_known ? total / pr.goals_known : 0;
    snap.pillars.push_back(std::move(pr));
  }
  return snap;
}

}  // namespace postwatch::aggregator
