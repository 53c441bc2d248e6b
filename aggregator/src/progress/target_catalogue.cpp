#include "progress/target_catalogue.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <set>

namespace postwatch::aggregator {
using nlohmann::json;

std::string_view to_string(TargetKind k) {
  return k == TargetKind::Ratio ? "ratio" : k == TargetKind::Milestone ? "milestone" : "value";
}

std::string_view to_string(MilestoneState s) {
  switch (s) {
    case MilestoneState::Done: return "done";
    case MilestoneState::Postponed: return "postponed";
    case MilestoneState::Cancelled: return "cancelled";
    case MilestoneState::Planned: break;
  }
  return "planned";
}

std::optional<std::int64_t> parse_date_ms(std::string_view d) {
  if (d.size() != 10 || d[4] != '-' || d[7] != '-') return std::nullopt;
  for (std::size_t i : {0, 1, 2, 3, 5, 6, 8, 9})
    if (d[i] < '0' || d[i] > '9') return std::nullopt;
  auto num = [&](std::size_t at, std::size_t n) {
    int v = 0;
    for (std::size_t i = at; i < at + n; ++i) v = v * 10 + (d[i] - '0');
    return v;
  };
  const std::chrono::year_month_day ymd{std::chrono::year{num(0, 4)},
                                        std::chrono::month{static_cast<unsigned>(num(5, 2))},
                                        std::chrono::day{static_cast<unsigned>(num(8, 2))}};
  if (!ymd.ok()) return std::nullopt;
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::sys_days{ymd}.time_since_epoch()).count();
}

TargetSpec StrategyTarget::spec() const { return {baseline, target.value_or(0), by_ms, higher_is_better}; }

const StrategyTarget* TargetCatalogue::find(std::string_view id) const {
  auto it = std::find_if(targets_.begin(), targets_.end(), [&](const StrategyTarget& t) { return t.id == id; });
  return it == targets_.end() ? nullptr : &*it;
}

namespace {

// Reads one entry; every problem names the file and the entry, as the indicator catalogue does.
class EntryReader {
 public:
  EntryReader(const std::string& origin, std::string entry) : origin_(origin), entry_(std::move(entry)) {}
  [[noreturn]] void fail(const std::string& problem) const {
    throw CatalogueError(origin_ + ": " + entry_ + ": " + problem);
  }
  void only(const json& j, std::initializer_list<std::string_view> known) const {
    for (const auto& [key, v] : j.items())
      if (std::find(known.begin(), known.end(), key) == known.end()) fail("unknown field '" + key + "'");
  }
  std::string str(const json& j, const char* key, bool required) const {
    auto it = j.find(key);
    if (it == j.end()) {
      if (required) fail(std::string("missing field '") + key + "'");
      return "";
    }
    if (!it->is_string() || it->get<std::string>().empty())
      fail(std::string("field '") + key + "' must be a non-empty string");
    return it->get<std::string>();
  }
  double number(const json& j, const char* key, const std::string& where) const {
    auto it = j.find(key);
    if (it == j.end()) fail(where + "missing field '" + key + "'");
    if (!it->is_number() || !std::isfinite(it->get<double>())) fail(where + "field '" + key + "' must be a number");
    return it->get<double>();
  }
  std::int64_t date(const json& j, const char* key, const std::string& where, bool required) const {
    auto it = j.find(key);
    if (it == j.end()) {
      if (required) fail(where + "missing field '" + key + "'");
      return 0;
    }
    auto ms = it->is_string() ? parse_date_ms(it->get<std::string>()) : std::nullopt;
    if (!ms) fail(where + "field '" + key + "' must be a date YYYY-MM-DD, not " + it->dump());
    return *ms;
  }

 private:
  const std::string& origin_;
  std::string entry_;
};

void read_figures(const EntryReader& r, const json& e, StrategyTarget& t) {
  if (auto b = e.find("baseline"); b != e.end() && !b->is_null()) {
    if (!b->is_object()) r.fail("'baseline' must be an object {\"value\", \"at\"} or null");
    r.only(*b, {"value", "at", "source"});
    t.baseline = FigureReading{r.date(*b, "at", "baseline: ", true), r.number(*b, "value", "baseline: ")};
  }
  t.baseline_note = r.str(e, "baseline_note", false);
  if (!t.baseline && t.baseline_note.empty())
    r.fail("no baseline: give one, or say why in 'baseline_note' (e.g. \"not in the documents\")");
  auto goal = e.find("target");
  if (goal == e.end() || !goal->is_object()) r.fail("missing field 'target' ({\"value\", \"by\"})");
  r.only(*goal, {"value", "by", "better"});
  t.target = r.number(*goal, "value", "target: ");
  t.by_ms = r.date(*goal, "by", "target: ", false);
  const std::string better = goal->contains("better") ? r.str(*goal, "better", false) : "";
  if (!better.empty() && better != "higher" && better != "lower")
    r.fail("target: 'better' must be \"higher\" or \"lower\"");
  if (t.baseline) {
    if (*t.target == t.baseline->value) r.fail("the target equals the baseline: nothing to progress toward");
    t.higher_is_better = *t.target > t.baseline->value;
    if (!better.empty() && (better == "higher") != t.higher_is_better)
      r.fail("target: 'better' says " + better + " but the target lies the other way from the baseline");
    if (t.by_ms != 0 && t.by_ms <= t.baseline->at_ms) r.fail("the target's date is not after the baseline's");
  } else {
    if (better.empty())
      r.fail("target: without a baseline, say which way is better ('better': \"higher\" or \"lower\")");
    t.higher_is_better = better == "higher";
  }
  if (auto ms = e.find("milestones"); ms != e.end()) {
    if (!ms->is_array()) r.fail("'milestones' must be a list of {\"at\", \"value\"}");
    for (std::size_t i = 0; i < ms->size(); ++i) {
      const auto where = "milestones[" + std::to_string(i) + "]: ";
      if (!(*ms)[i].is_object()) r.fail(where + "must be an object {\"at\", \"value\"}");
      FigureReading m{r.date((*ms)[i], "at", where, true), r.number((*ms)[i], "value", where)};
      if (!t.milestones.empty() && m.at_ms <= t.milestones.back().at_ms) r.fail(where + "not after the one before");
      if ((t.baseline && m.at_ms <= t.baseline->at_ms) || (t.by_ms != 0 && m.at_ms >= t.by_ms))
        r.fail(where + "must fall between the baseline and the target date");
      t.milestones.push_back(m);
    }
  }
}

// A target follows a figure the ministry reports: posts' signals are kept for days, not years.
void check_followed(const EntryReader& r, const IndicatorCatalogue& catalogue, const std::string& id) {
  const Indicator* ind = catalogue.find_indicator(id);
  if (!ind) r.fail("unknown indicator '" + id + "'");
  if (ind->reported_by != Reporter::Ministry)
    r.fail("indicator '" + id +
           "' is reported by the posts; a target follows a figure the ministry reports "
           "(\"reported_by\": \"ministry\")");
}

// A ratio's parts that are targets must not lead back to it.
void check_ratio_cycles(const std::vector<StrategyTarget>& targets, const std::string& origin) {
  std::map<std::string, const StrategyTarget*> by_id;
  for (const auto& t : targets) by_id[t.id] = &t;
  for (const auto& start : targets) {
    if (start.kind != TargetKind::Ratio) continue;
    std::vector<std::string> path{start.id};
    std::set<std::string> seen;
    std::vector<std::pair<std::string, std::vector<std::string>>> todo{{start.ratio.numerator, path},
                                                                       {start.ratio.denominator, path}};
    while (!todo.empty()) {
      auto [id, via] = std::move(todo.back());
      todo.pop_back();
      via.push_back(id);
      if (id == start.id) {
        std::string chain;
        for (const auto& v : via) chain += (chain.empty() ? "" : " -> ") + v;
        throw CatalogueError(origin + ": targets '" + start.id + "': the ratio refers back to itself: " + chain);
      }
      auto it = by_id.find(id);
      if (it == by_id.end() || it->second->kind != TargetKind::Ratio || !seen.insert(id).second) continue;
      todo.push_back({it->second->ratio.numerator, via});
      todo.push_back({it->second->ratio.denominator, via});
    }
  }
}

}  // namespace

TargetCatalogue TargetCatalogue::load(const std::filesystem::path& file, const IndicatorCatalogue& catalogue) {
  std::ifstream in(file);
  if (!in) throw CatalogueError(file.string() + ": cannot open catalogue file");
  json root;
  try {
    root = json::parse(in);
  } catch (const json::exception& e) {
    throw CatalogueError(file.string() + ": not valid JSON: " + e.what());
  }
  return parse(root, file.string(), catalogue);
}

TargetCatalogue TargetCatalogue::parse(const json& root, const std::string& origin,
                                       const IndicatorCatalogue& catalogue) {
  TargetCatalogue out;
  auto section = root.find("targets");
  if (section == root.end()) return out;
  if (!section->is_array()) throw CatalogueError(origin + ": targets: must be a list");
  std::set<std::string> ids;
  for (const auto& e : *section)
    if (e.is_object() && e.contains("id") && e["id"].is_string()) ids.insert(e["id"].get<std::string>());
  std::set<std::string> seen;
  for (std::size_t i = 0; i < section->size(); ++i) {
    const json& e = (*section)[i];
    std::string entry = "targets[" + std::to_string(i) + "]";
    if (!e.is_object()) EntryReader(origin, entry).fail("must be an object");
    EntryReader head(origin, entry);
    StrategyTarget t;
    t.id = head.str(e, "id", true);
    EntryReader r(origin, entry + " '" + t.id + "'");
    if (t.id.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") != std::string::npos)
      r.fail("id may hold only a-z, 0-9 and _");
    if (!seen.insert(t.id).second) r.fail("duplicate target id");
    r.only(e, {"id", "goal", "threats", "commitment", "source", "unit", "kind", "indicator", "numerator", "denominator",
               "factor", "baseline", "baseline_note", "target", "milestones", "due", "state", "state_note"});
    if (!e.contains("goal") || !e["goal"].is_number_integer()) r.fail("missing field 'goal' (a goal number)");
    t.goal = e["goal"].get<int>();
    if (!catalogue.find_goal(t.goal)) r.fail("unknown goal " + std::to_string(t.goal));
    if (auto th = e.find("threats"); th != e.end()) {
      if (!th->is_array()) r.fail("'threats' must be a list of threat ids");
      for (const auto& x : *th) {
        const bool known = x.is_string() && std::any_of(catalogue.threats().begin(), catalogue.threats().end(),
                                                        [&](const Threat& c) { return c.id == x.get<std::string>(); });
        if (!known) r.fail("unknown threat " + x.dump());
        t.threats.push_back(x.get<std::string>());
      }
    } else {
      for (const auto& c : catalogue.threats())
        if (std::count(c.goals.begin(), c.goals.end(), t.goal)) t.threats.push_back(c.id);
    }
    t.commitment = r.str(e, "commitment", true);
    t.source = r.str(e, "source", true);
    t.unit = r.str(e, "unit", false);
    const std::string kind = r.str(e, "kind", true);
    if (kind == "value") {
      t.kind = TargetKind::Value;
      t.indicator = r.str(e, "indicator", true);
      check_followed(r, catalogue, t.indicator);
      read_figures(r, e, t);
    } else if (kind == "ratio") {
      t.kind = TargetKind::Ratio;
      t.ratio.numerator = r.str(e, "numerator", true);
      t.ratio.denominator = r.str(e, "denominator", true);
      for (const auto& part : {t.ratio.numerator, t.ratio.denominator}) {
        if (catalogue.find_indicator(part))
          check_followed(r, catalogue, part);
        else if (!ids.count(part))
          r.fail("'" + part + "' in the ratio is neither an indicator nor a target");
      }
      if (e.contains("factor")) t.ratio.factor = r.number(e, "factor", "");
      if (t.ratio.factor == 0) r.fail("'factor' must not be 0");
      read_figures(r, e, t);
    } else if (kind == "milestone") {
      t.kind = TargetKind::Milestone;
      t.due_ms = r.date(e, "due", "", false);
      const std::string state = r.str(e, "state", true);
      static const std::pair<const char*, MilestoneState> kStates[] = {{"planned", MilestoneState::Planned},
                                                                       {"done", MilestoneState::Done},
                                                                       {"postponed", MilestoneState::Postponed},
                                                                       {"cancelled", MilestoneState::Cancelled}};
      auto s = std::find_if(std::begin(kStates), std::end(kStates), [&](const auto& k) { return state == k.first; });
      if (s == std::end(kStates)) r.fail("'state' must be planned, done, postponed or cancelled, not '" + state + "'");
      t.state = s->second;
      t.state_note = r.str(e, "state_note", false);
      for (const char* figure : {"indicator", "numerator", "baseline", "target", "milestones"})
        if (e.contains(figure)) r.fail(std::string("a milestone has a state, not '") + figure + "'");
    } else {
      r.fail("'kind' must be value, ratio or milestone, not '" + kind + "'");
    }
    out.targets_.push_back(std::move(t));
  }
  for (const auto& t : out.targets_)
    if (t.kind == TargetKind::Ratio)
      for (const auto& part : {t.ratio.numerator, t.ratio.denominator})
        if (const auto* other = out.find(part); other && other->kind == TargetKind::Milestone)
          throw CatalogueError(origin + ": targets '" + t.id + "': '" + part +
                               "' in the ratio is a milestone, not a figure");
  check_ratio_cycles(out.targets_, origin);
  return out;
}

}  // namespace postwatch::aggregator
