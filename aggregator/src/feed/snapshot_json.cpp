#include "feed/snapshot_json.hpp"

#include <cmath>

namespace postwatch::aggregator {
using nlohmann::json;

namespace {
double round2(double v) { return std::round(v * 100.0) / 100.0; }
}  // namespace

json indicator_json(const IndicatorCatalogue& cat, const IndicatorRollup& r) {
  const Indicator& ind = cat.indicators()[r.indicator];
  json j{{"id", ind.id},
         {"name", ind.name},
         {"kind", to_string(ind.kind)},
         {"unit", ind.unit},
         {"status", to_string(r.status)},
         {"posts_reporting", r.posts_reporting},
         {"posts_amber", r.posts_amber},
         {"posts_red", r.posts_red},
         {"amber", ind.amber},
         {"red", ind.red},
         {"window_s", ind.window_s},
         {"aggregation", to_string(ind.aggregation)}};
  j["value"] = r.posts_reporting ? json(r.value) : json(nullptr);
  j["severity"] = round2(r.severity);
  return j;
}

json goal_snapshot_json(const IndicatorCatalogue& cat, const StatusBoard& board, std::size_t g, bool detail) {
  const Goal& goal = cat.goals()[g];
  const ShownStatus& s = board.goals()[g];
  json j{{"id", goal.id},
         {"name", goal.name},
         {"pillar", goal.pillar},
         {"status", to_string(s.shown)},
         {"since_ms", s.since_ms}};
  j["score"] = s.shown == Status::Unknown ? json(nullptr) : json(round2(s.score));
  if (s.candidate != s.shown && s.candidate_since_ms != 0)
    j["pending"] = {{"status", to_string(s.candidate)}, {"since_ms", s.candidate_since_ms}};
  if (g < board.last().goals.size()) {
    const GoalRollupResult& r = board.last().goals[g];
    j["raw_status"] = to_string(r.status);
    j["indicators_reporting"] = r.indicators_reporting;
    j["indicators_total"] = r.indicators.size();
    j["posts_reporting"] = r.posts_reporting;
    j["posts_expected"] = r.posts_expected;
    j["coverage"] = round2(r.coverage);
    j["low_coverage"] = r.low_coverage;
    if (detail) {
      j["aims"] = goal.aims;
      json inds = json::array();
      for (const auto& ir : r.indicators) inds.push_back(indicator_json(cat, ir));
      j["indicators"] = std::move(inds);
    }
  }
  return j;
}

json pillar_snapshot_json(const IndicatorCatalogue& cat, const StatusBoard& board, std::size_t p) {
  const Pillar& pillar = cat.pillars()[p];
  const ShownStatus& s = board.pillars()[p];
  json j{{"id", pillar.id},
         {"name", pillar.name},
         {"status", to_string(s.shown)},
         {"since_ms", s.since_ms},
         {"goals", pillar.goals}};
  j["score"] = s.shown == Status::Unknown ? json(nullptr) : json(round2(s.score));
  return j;
}

json alarm_json(const Alarm& a) {
  json causes = json::array();
  for (const auto& c : a.causes)
    causes.push_back(
        {{"post", c.post}, {"indicator", c.indicator}, {"value", c.value}, {"status", to_string(c.status)}});
  json j{{"id", a.id},
         {"kind", a.kind},
         {"level", to_string(a.level)},
         {"worst_level", to_string(a.worst_level)},
         {"state", a.open() ? "open" : "cleared"},
         {"raised_at_ms", a.raised_at_ms},
         {"cleared_at_ms", a.cleared_at_ms ? json(a.cleared_at_ms) : json(nullptr)},
         {"causes", causes},
         {"acknowledged", a.acked_at_ms != 0}};
  if (a.kind == AlarmKind::Goal)
    j["goal"] = a.goal;
  else
    j["post"] = a.post;
  if (a.acked_at_ms) j["ack"] = {{"by", a.acked_by}, {"at_ms", a.acked_at_ms}, {"comment", a.ack_comment}};
  return j;
}

json stream_snapshot_json(const IndicatorCatalogue& cat, const StatusBoard& board, std::int64_t now_ms) {
  json goals = json::array(), pillars = json::array(), alarms = json::array();
  for (std::size_t g = 0; g < cat.goals().size(); ++g) goals.push_back(goal_snapshot_json(cat, board, g));
  for (std::size_t p = 0; p < cat.pillars().size(); ++p) pillars.push_back(pillar_snapshot_json(cat, board, p));
  for (auto it = board.alarms().rbegin(); it != board.alarms().rend(); ++it)
    if (it->open()) alarms.push_back(alarm_json(*it));
  return {{"type", "snapshot"},
          {"generated_at_ms", now_ms},
          {"goals", std::move(goals)},
          {"pillars", std::move(pillars)},
          {"alarms", std::move(alarms)}};
}

std::string dump_json(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace postwatch::aggregator
