#include "feed/progress_json.hpp"

#include "feed/http_helpers.hpp"

namespace postwatch::aggregator {
using nlohmann::json;

ReadingSeries reading_series(const std::vector<StrategyReadingRow>& rows) {
  ReadingSeries out;
  for (const auto& r : rows) out[r.indicator].push_back({r.observed_at_ms, r.value});
  return out;
}

namespace {

std::optional<std::int64_t> parse_moment(const std::string& text) {
  if (auto d = parse_date_ms(text)) return d;
  std::int64_t ms = 0;
  if (parse_int(std::string_view(text), ms) && ms >= 0) return ms;
  return std::nullopt;
}

std::string date_of(std::int64_t ms) { return iso_utc(ms).substr(0, 10); }

json optional_number(const std::optional<double>& v, bool rounded = true) {
  if (!v) return nullptr;
  return rounded ? json(round2(*v)) : json(*v);
}

json reading_json(const FigureReading& r) { return {{"at_ms", r.at_ms}, {"at", date_of(r.at_ms)}, {"value", r.value}}; }

}  // namespace

std::optional<ProgressPeriod> parse_progress_period(const std::optional<std::string>& from,
                                                    const std::optional<std::string>& at, std::int64_t now_ms,
                                                    std::string& error, const std::string& at_name) {
  ProgressPeriod p;
  p.at_ms = now_ms;
  if (at) {
    auto v = parse_moment(*at);
    if (!v) {
      error = at_name + " must be a date YYYY-MM-DD or UTC milliseconds, not '" + *at + "'";
      return std::nullopt;
    }
    p.at_ms = *v;
  }
  p.from_ms = std::max<std::int64_t>(0, p.at_ms - kDefaultProgressPeriodMs);
  if (from) {
    auto v = parse_moment(*from);
    if (!v) {
      error = "from must be a date YYYY-MM-DD or UTC milliseconds, not '" + *from + "'";
      return std::nullopt;
    }
    p.from_ms = *v;
  }
  if (p.from_ms > p.at_ms) {
    error = "from must not be after " + at_name;
    return std::nullopt;
  }
  return p;
}

json target_json(const TargetAssessment& a) {
  const StrategyTarget& t = *a.target;
  json j{{"id", t.id},
         {"goal", t.goal},
         {"threats", t.threats},
         {"kind", to_string(t.kind)},
         {"commitment", t.commitment},
         {"source", t.source},
         {"unit", t.unit},
         {"status", a.status},
         {"result", to_string(a.result)}};
  if (t.kind == TargetKind::Milestone) {
    j["state"] = to_string(t.state);
    j["state_note"] = t.state_note;
    j["due"] = t.due_ms ? json(date_of(t.due_ms)) : json(nullptr);
    return j;
  }
  if (t.kind == TargetKind::Value) {
    j["indicator"] = t.indicator;
  } else {
    j["numerator"] = t.ratio.numerator;
    j["denominator"] = t.ratio.denominator;
    j["factor"] = t.ratio.factor;
  }
  j["baseline"] = t.baseline ? reading_json(*t.baseline) : json(nullptr);
  if (!t.baseline_note.empty()) j["baseline_note"] = t.baseline_note;
  j["target"] = {{"value", t.target ? json(*t.target) : json(nullptr)},
                 {"by", t.by_ms ? json(date_of(t.by_ms)) : json(nullptr)},
                 {"better", t.higher_is_better ? "higher" : "lower"}};
  json ms = json::array();
  for (const auto& m : t.milestones) ms.push_back(reading_json(m));
  j["milestones"] = std::move(ms);
  const TargetProgress& p = a.progress;
  j["current"] = optional_number(p.current, false);
  j["progress"] = optional_number(p.progress);
  j["trend_per_year"] = optional_number(p.trend_per_year);
  j["required_per_year"] = optional_number(p.required_per_year);
  j["ratio"] = optional_number(p.ratio);
  j["points"] = p.points;
  json readings = json::array();
  for (const auto& r : a.readings) readings.push_back(reading_json(r));
  j["readings"] = std::move(readings);
  return j;
}

json counts_json(const ProgressCounts& c) {
  json results = json::object();
  for (std::size_t k = 0; k < kResultKinds; ++k)
    results[std::string(to_string(static_cast<ResultKind>(k)))] = c.by_result[k];
  return {{"targets", c.targets}, {"by_status", c.by_status}, {"by_result", std::move(results)}};
}

json targets_json(const StrategyProgress& p, const IndicatorCatalogue& catalogue) {
  json list = json::array();
  for (const auto& a : p.targets) list.push_back(target_json(a));
  json goals = json::array();
  for (const auto& g : catalogue.goals()) {
    auto it = p.by_goal.find(g.id);
    goals.push_back({{"goal", g.id}, {"counts", counts_json(it == p.by_goal.end() ? ProgressCounts{} : it->second)}});
  }
  json threats = json::array();
  for (const auto& th : catalogue.threats()) {
    auto it = p.by_threat.find(th.id);
    threats.push_back(
        {{"threat", th.id}, {"counts", counts_json(it == p.by_threat.end() ? ProgressCounts{} : it->second)}});
  }
  return {{"from_ms", p.from_ms},          {"at_ms", p.at_ms},
          {"from", date_of(p.from_ms)},    {"at", date_of(p.at_ms)},
          {"counts", counts_json(p.all)},  {"goals", std::move(goals)},
          {"threats", std::move(threats)}, {"targets", std::move(list)}};
}

json goal_progress_json(const StrategyProgress& p, const Goal& goal, json operational) {
  json list = json::array();
  for (const auto& a : p.targets)
    if (a.target->goal == goal.id) list.push_back(target_json(a));
  auto it = p.by_goal.find(goal.id);
  return {{"goal", goal.id},
          {"name", goal.name},
          {"from_ms", p.from_ms},
          {"at_ms", p.at_ms},
          {"from", date_of(p.from_ms)},
          {"at", date_of(p.at_ms)},
          {"operational", std::move(operational)},
          {"counts", counts_json(it == p.by_goal.end() ? ProgressCounts{} : it->second)},
          {"targets", std::move(list)}};
}

}  // namespace postwatch::aggregator
