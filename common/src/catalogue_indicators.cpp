// The catalogue's indicators section: each indicator's id, kind and reporter, the board's
// fields for one the posts report (thresholds, aggregation, goals), its urgency and threats.
#include "catalogue_reader.hpp"

#include <algorithm>

namespace postwatch {
namespace catalogue_reading {
namespace {

bool is_valid_indicator_id(std::string_view id) {
  if (id.size() < 2 || id.size() > 48 || !(id[0] >= 'a' && id[0] <= 'z')) return false;
  return std::all_of(id.begin(), id.end(),
                     [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; });
}

// The fields of an indicator the posts report: its thresholds, how posts' readings combine,
// and the goals it feeds.
void read_board_fields(const CatalogueReader& r, const json& j, const std::string& entry, const std::set<int>& goal_ids,
                       Indicator& ind) {
  ind.baseline = r.num(j, entry, "baseline");
  ind.amber = r.num(j, entry, "amber");
  ind.red = r.num(j, entry, "red");
  ind.direction = r.one_of(j, entry, "direction", kDirectionNames);
  ind.aggregation = r.one_of(j, entry, "aggregation", kAggregationNames);
  const auto& win = r.member(j, entry, "window_s");
  if (!win.is_number_integer() || win.get<std::int64_t>() < 0) r.fail(entry, "window_s must be an integer >= 0");
  ind.window_s = win.get<std::int64_t>();

  if (ind.kind != ValueKind::Text) {
    if (ind.min > ind.max) r.fail(entry, "min must not exceed max");
    if (ind.baseline < ind.min || ind.baseline > ind.max) r.fail(entry, "baseline must lie within [min, max]");
    if (ind.direction == Direction::HigherIsWorse) {
      if (!(ind.baseline < ind.amber && ind.amber < ind.red))
        r.fail(entry, "thresholds must satisfy baseline < amber < red for higher_is_worse (got baseline " +
                          nlohmann::json(ind.baseline).dump() + ", amber " + nlohmann::json(ind.amber).dump() +
                          ", red " + nlohmann::json(ind.red).dump() + ")");
    } else if (!(ind.baseline > ind.amber && ind.amber > ind.red)) {
      r.fail(entry, "thresholds must satisfy baseline > amber > red for lower_is_worse");
    }
  }
  if (ind.kind == ValueKind::Count && ind.window_s == 0) r.fail(entry, "a count needs window_s > 0");

  const auto& gw = r.array(j, entry, "goals");
  if (gw.empty()) r.fail(entry, "must feed at least one goal");
  for (const auto& g : gw) {
    GoalWeight w;
    w.goal = r.integer(r.member(g, entry, "goal"), entry, "goal reference");
    w.weight = r.num(g, entry, "weight");
    if (!goal_ids.count(w.goal)) r.fail(entry, "unknown goal " + std::to_string(w.goal));
    if (!(w.weight > 0 && w.weight <= 1)) r.fail(entry, "goal weight must be in (0, 1]");
    ind.goals.push_back(w);
  }
}

// Who reports it, and what a ministry figure may not have (the board's fields).
void read_reporter(const CatalogueReader& r, const json& j, const std::string& entry, const std::set<int>& goal_ids,
                   Indicator& ind) {
  if (j.contains("reported_by")) ind.reported_by = r.one_of(j, entry, "reported_by", kReporterNames);
  ind.min = r.num(j, entry, "min");
  ind.max = r.num(j, entry, "max");
  if (ind.reported_by != Reporter::Ministry) return read_board_fields(r, j, entry, goal_ids, ind);
  // A national figure: it feeds strategy targets, never the board, so nothing of the board's.
  for (const char* board : {"baseline", "amber", "red", "direction", "aggregation", "window_s", "goals"})
    if (j.contains(board))
      r.fail(entry, std::string("'") + board +
                        "' is for indicators the posts report; a ministry indicator feeds strategy targets, "
                        "not the board");
  if (ind.kind == ValueKind::Text) r.fail(entry, "a ministry indicator is a figure, not text");
  if (ind.min > ind.max) r.fail(entry, "min must not exceed max");
}

void read_urgency(const CatalogueReader& r, const json& j, const std::string& entry, Indicator& ind) {
  if (!j.contains("urgent")) return;
  ind.urgent = r.one_of(j, entry, "urgent", kUrgencyNames);
  if (ind.urgent == Urgency::AtRed && (ind.reported_by == Reporter::Ministry || ind.kind == ValueKind::Text))
    r.fail(entry, "urgent 'at_red' needs a red threshold; this indicator has none (use always or no)");
}

Indicator read_indicator(const CatalogueReader& r, const json& j, std::size_t i, const std::set<int>& goal_ids,
                         const std::set<std::string>& threat_ids) {
  Indicator ind;
  std::string entry;
  ind.id = read_id(r, j, "indicators", i, entry);
  if (!is_valid_indicator_id(ind.id)) r.fail(entry, "id must match ^[a-z][a-z0-9_]{1,47}$");
  ind.name = r.str(j, entry, "name");
  ind.unit = r.str(j, entry, "unit", false);
  ind.description = r.str(j, entry, "description", false);
  std::string kind = r.str(j, entry, "kind");
  if (!parse_value_kind(kind, ind.kind))
    r.fail(entry, "kind '" + kind + "' is not one of level, count, gauge, boolean, share, text");
  read_reporter(r, j, entry, goal_ids, ind);
  read_urgency(r, j, entry, ind);
  if (j.contains("threats")) {
    for (const auto& t : r.array(j, entry, "threats")) {
      if (!t.is_string() || !threat_ids.count(t.get<std::string>())) r.fail(entry, "unknown threat " + t.dump());
      ind.threats.push_back(t.get<std::string>());
    }
  }
  return ind;
}

}  // namespace

std::vector<Indicator> read_indicators(const CatalogueReader& r, const json& root, const std::set<int>& goal_ids,
                                       const std::set<std::string>& threat_ids) {
  std::vector<Indicator> out;
  std::set<std::string> ids;
  const auto& indicators = r.array(root, "(top level)", "indicators");
  for (std::size_t i = 0; i < indicators.size(); ++i) {
    auto ind = read_indicator(r, indicators[i], i, goal_ids, threat_ids);
    if (!ids.insert(ind.id).second) r.fail(entry_name("indicators", i, ind.id), "duplicate indicator id");
    out.push_back(std::move(ind));
  }
  return out;
}

}  // namespace catalogue_reading

bool Indicator::is_urgent(double number) const {
  switch (urgent) {
    case Urgency::Always: return true;
    case Urgency::AtRed: return direction == Direction::HigherIsWorse ? number >= red : number <= red;
    case Urgency::No: break;
  }
  return false;
}

}  // namespace postwatch
