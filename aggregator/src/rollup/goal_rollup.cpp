#include "rollup/goal_rollup.hpp"

#include <algorithm>
#include <cmath>

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

Status parse_status(std::string_view s) {
  if (s == "green") return Status::Green;
  if (s == "amber") return Status::Amber;
  if (s == "red") return Status::Red;
  return Status::Unknown;
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

Status classify(const Indicator& ind, double v, Status previous, double band) {
  Status raw = classify(ind, v);
  if (raw >= previous || previous == Status::Unknown) return raw;
  // Falling back: each threshold moves down by `band` of the step below it, so a value
  // hovering at a threshold keeps its status until it is clearly below.
  const bool up = ind.direction == Direction::HigherIsWorse;
  auto worse_or_equal = [&](double value, double threshold) { return up ? value >= threshold : value <= threshold; };
  double red = ind.red - band * (ind.red - ind.amber);
  double amber = ind.amber - band * (ind.amber - ind.baseline);
  Status held = worse_or_equal(v, red) ? Status::Red : worse_or_equal(v, amber) ? Status::Amber : Status::Green;
  return std::min(previous, std::max(raw, held));
}

double severity(const Indicator& ind, double v) {
  double s = ind.direction == Direction::HigherIsWorse ? (v - ind.baseline) / (ind.red - ind.baseline)
                                                       : (ind.baseline - v) / (ind.baseline - ind.red);
  return std::clamp(s, 0.0, 1.0);
}

namespace {
double band_floor(Status s) { return s == Status::Red ? 0 : s == Status::Amber ? 35 : 70; }
constexpr double kBandWidth = 30;
}  // namespace

double score_in_band(Status status, double health) {
  if (status == Status::Unknown) return 0;
  return band_floor(status) + kBandWidth * std::clamp(health, 0.0, 1.0);
}

double health_from_score(Status status, double score) {
  if (status == Status::Unknown) return 0;
  return std::clamp((score - band_floor(status)) / kBandWidth, 0.0, 1.0);
}

GoalRollup::GoalRollup(const IndicatorCatalogue& catalogue, RollupPolicy policy)
    : catalogue_(catalogue), policy_(policy) {
  for (const auto& p : catalogue.posts()) field_.push_back(!p.is_ministry());
}

RollupSnapshot GoalRollup::compute(const IndicatorState& state, std::int64_t now_ms, const std::vector<bool>& silent,
                                   const std::vector<Status>& previous_cells) const {
  RollupSnapshot snap;
  snap.state_version = state.version();
  snap.computed_at_ms = now_ms;
  const auto& inds = catalogue_.indicators();
  const std::uint32_t posts = state.post_count();
  snap.indicators.resize(inds.size());
  snap.cells.assign(static_cast<std::size_t>(posts) * inds.size(), Status::Unknown);
  snap.values.assign(snap.cells.size(), 0.0);
  auto is_silent = [&](std::uint32_t p) { return p < silent.size() && silent[p]; };
  const auto field = [&](std::uint32_t p) { return p < field_.size() && field_[p]; };

  for (std::uint32_t i = 0; i < inds.size(); ++i) {
    const Indicator& ind = inds[i];
    IndicatorRollup& r = snap.indicators[i];
    r.indicator = i;
    if (!ind.on_board()) continue;  // text is shown, never rolled up; ministry figures feed targets
    double sum = 0;
    for (std::uint32_t p = 0; p < posts; ++p) {
      if (!field(p) || !state.at(p, i).present || is_silent(p)) continue;
      double v = state.value(p, i, now_ms);
      auto cell = static_cast<std::size_t>(p) * inds.size() + i;
      Status prev = cell < previous_cells.size() ? previous_cells[cell] : Status::Unknown;
      Status st = classify(ind, v, prev, policy_.hysteresis_band);
      snap.cells[cell] = st;
      snap.values[cell] = v;
      if (r.posts_reporting == 0)
        r.value = v;
      else if (ind.aggregation == Aggregation::Max)
        r.value = std::max(r.value, v);
      else if (ind.aggregation == Aggregation::Min)
        r.value = std::min(r.value, v);
      sum += v;
      r.posts_reporting += 1;
      r.status = std::max(r.status, st);
      r.severity = std::max(r.severity, severity(ind, v));
      r.posts_red += st == Status::Red;
      r.posts_amber += st == Status::Amber;
    }
    if (r.posts_reporting > 0 && ind.aggregation == Aggregation::Sum) r.value = sum;
    if (r.posts_reporting > 0 && ind.aggregation == Aggregation::Mean) r.value = sum / r.posts_reporting;
  }

  std::vector<char> expected(posts), reporting(posts);
  for (const auto& goal : catalogue_.goals()) {
    GoalRollupResult gr;
    gr.goal = goal.id;
    std::fill(expected.begin(), expected.end(), 0);
    std::fill(reporting.begin(), reporting.end(), 0);
    double weighted = 0, weights = 0;
    for (std::uint32_t i = 0; i < inds.size(); ++i) {
      for (const auto& gw : inds[i].goals) {
        if (gw.goal != gr.goal) continue;
        const IndicatorRollup& r = snap.indicators[i];
        gr.indicators.push_back(r);
        if (inds[i].kind == ValueKind::Text) continue;
        for (std::uint32_t p = 0; p < posts; ++p) {
          if (!field(p) || !state.at(p, i).present) continue;
          expected[p] = 1;
          if (!is_silent(p)) reporting[p] = 1;
        }
        if (r.posts_reporting == 0) continue;
        gr.indicators_reporting += 1;
        weighted += gw.weight * r.severity;
        weights += gw.weight;
        gr.status = std::max(gr.status, r.status);
      }
    }
    for (std::uint32_t p = 0; p < posts; ++p) {
      gr.posts_expected += expected[p];
      gr.posts_reporting += reporting[p];
    }
    gr.coverage = gr.posts_expected ? static_cast<double>(gr.posts_reporting) / gr.posts_expected : 0;
    gr.health = weights > 0 ? 1.0 - weighted / weights : 0;
    // Too few posts reporting: "all quiet" cannot be told from "no one is looking".
    if (gr.posts_expected > 0 && gr.coverage < policy_.min_coverage) {
      gr.low_coverage = true;
      if (gr.status == Status::Green) gr.status = Status::Unknown;
    }
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
      total += gr.health;
      pr.goals_known += 1;
    }
    pr.health = pr.goals_known ? total / pr.goals_known : 0;
    snap.pillars.push_back(std::move(pr));
  }
  return snap;
}

}  // namespace postwatch::aggregator
