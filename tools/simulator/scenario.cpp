#include "scenario.hpp"

#include "postwatch/wire_codec.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <initializer_list>
#include <sstream>

namespace postwatch::sim {

using nlohmann::json;

namespace {

// Long enough for a week-long soak, short enough that a typo like 1e9 is caught.
constexpr double kMaxSeconds = 1e6;

// Builds messages of the form "<file>: <entry>: <problem>", as the catalogue loader does.
class Reader {
 public:
  explicit Reader(std::string origin) : origin_(std::move(origin)) {}

  [[noreturn]] void fail(const std::string& entry, const std::string& problem) const {
    throw ScenarioError(origin_ + ": " + entry + ": " + problem);
  }

  void only_fields(const json& obj, const std::string& entry, std::initializer_list<std::string_view> allowed,
                   std::string_view context = "") const {
    for (const auto& [key, _] : obj.items())
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end())
        fail(entry, "unknown field '" + key + "'" + std::string(context));
  }
  const json& member(const json& obj, const std::string& entry, const char* key) const {
    auto it = obj.find(key);
    if (it == obj.end()) fail(entry, std::string("missing field '") + key + "'");
    return *it;
  }
  std::string str(const json& obj, const std::string& entry, const char* key) const {
    const auto& v = member(obj, entry, key);
    if (!v.is_string()) fail(entry, std::string("field '") + key + "' must be a string");
    return v.get<std::string>();
  }
  bool boolean(const json& obj, const std::string& entry, const char* key, bool fallback) const {
    auto it = obj.find(key);
    if (it == obj.end()) return fallback;
    if (!it->is_boolean()) fail(entry, std::string("field '") + key + "' must be true or false");
    return it->get<bool>();
  }
  // A number of seconds in [lo, kMaxSeconds]; `lo_open` excludes lo itself.
  double seconds(const json& obj, const std::string& entry, const char* key, double lo, bool lo_open) const {
    const auto& v = member(obj, entry, key);
    if (!v.is_number()) fail(entry, std::string("field '") + key + "' must be a number of seconds");
    double d = v.get<double>();
    if (!std::isfinite(d) || d < lo || (lo_open && d == lo) || d > kMaxSeconds) {
      std::ostringstream os;
      os << "field '" << key << "' must be " << (lo_open ? "more than " : "at least ") << lo << " and at most "
         << kMaxSeconds << " seconds, not " << v.dump();
      fail(entry, os.str());
    }
    return d;
  }
  std::vector<std::string> strings(const json& obj, const std::string& entry, const char* key) const {
    const auto& v = member(obj, entry, key);
    if (!v.is_array() || v.empty()) fail(entry, std::string("field '") + key + "' must be a non-empty array of ids");
    std::vector<std::string> out;
    for (const auto& s : v) {
      if (!s.is_string()) fail(entry, std::string("field '") + key + "' must hold strings only");
      out.push_back(s.get<std::string>());
    }
    return out;
  }
  // A note a post files: one situation_note event.
  std::string note(const json& obj, const std::string& entry) const {
    std::string text = str(obj, entry, "note");
    if (text.empty()) fail(entry, "field 'note' must not be empty");
    if (text.size() > WireLimits::max_text_bytes)
      fail(entry, "field 'note' is " + std::to_string(text.size()) + " bytes; a situation note holds at most " +
                      std::to_string(WireLimits::max_text_bytes));
    return text;
  }

 private:
  std::string origin_;
};

std::string step_entry(std::size_t i) { return "steps[" + std::to_string(i) + "]"; }

void add_unique(std::vector<std::uint32_t>& v, std::uint32_t x) {
  if (std::find(v.begin(), v.end(), x) == v.end()) v.push_back(x);
}

bool parse_action(std::string_view s, StepAction& out) {
  for (auto a : {StepAction::Escalate, StepAction::Silence, StepAction::BrokerOutage, StepAction::Note})
    if (to_string(a) == s) {
      out = a;
      return true;
    }
  return false;
}

// The scenario's own selection of posts: "posts" and every post of "regions".
void read_pool(const Reader& r, const json& root, const IndicatorCatalogue& catalogue, Scenario& s) {
  if (root.contains("posts"))
    for (const auto& id : r.strings(root, "posts", "posts")) {
      auto p = catalogue.post_index(id);
      if (!p) r.fail("posts", "unknown post '" + id + "' (see the catalogue's posts)");
      if (catalogue.posts()[*p].is_ministry())
        r.fail("posts", "'" + id + "' is the ministry, which reports strategy figures, not simulated signals");
      add_unique(s.posts, *p);
    }
  if (root.contains("regions"))
    for (const auto& id : r.strings(root, "regions", "regions")) {
      if (!catalogue.region_index(id)) r.fail("regions", "unknown region '" + id + "'");
      for (auto p : catalogue.posts_of_kind(PostKind::Post))
        if (catalogue.posts()[p].region == id) add_unique(s.posts, p);
    }
  std::sort(s.posts.begin(), s.posts.end());
}

// "posts" and "regions" of a step; at least one of them when `required`.
void read_targets(const Reader& r, const json& step, const std::string& entry, const IndicatorCatalogue& catalogue,
                  const Scenario& s, bool required, ScenarioStep& out) {
  auto in_pool = [&](std::uint32_t p) {
    return s.posts.empty() || std::binary_search(s.posts.begin(), s.posts.end(), p);
  };
  if (step.contains("posts"))
    for (const auto& id : r.strings(step, entry, "posts")) {
      auto p = catalogue.post_index(id);
      if (!p) r.fail(entry, "unknown post '" + id + "'");
      if (catalogue.posts()[*p].is_ministry())
        r.fail(entry, "'" + id + "' is the ministry, which reports strategy figures, not simulated signals");
      if (!in_pool(*p)) r.fail(entry, "post '" + id + "' is not among the scenario's posts");
      add_unique(out.posts, *p);
    }
  if (step.contains("regions"))
    for (const auto& id : r.strings(step, entry, "regions")) {
      if (!catalogue.region_index(id)) r.fail(entry, "unknown region '" + id + "'");
      bool any = false;
      for (std::uint32_t p = 0; p < catalogue.posts().size() && !any; ++p)
        any = !catalogue.posts()[p].is_ministry() && catalogue.posts()[p].region == id && in_pool(p);
      if (!any) r.fail(entry, "region '" + id + "' has no post among the scenario's posts");
      out.regions.push_back(id);
    }
  if (required && out.posts.empty() && out.regions.empty())
    r.fail(entry, "a " + std::string(to_string(out.action)) + " step needs 'posts' or 'regions'");
}

void read_indicators(const Reader& r, const json& step, const std::string& entry, const IndicatorCatalogue& catalogue,
                     ScenarioStep& out) {
  for (const auto& id : r.strings(step, entry, "indicators")) {
    auto ix = catalogue.indicator_index(id);
    if (!ix) r.fail(entry, "unknown indicator '" + id + "'");
    const Indicator& ind = catalogue.indicators()[*ix];
    // What the signal model cannot move (signal_model.hpp): a counted event would stay in the
    // aggregator's window long after the step, text has no level, the spool depth is measured.
    if (ind.kind == ValueKind::Count)
      r.fail(entry, "indicator '" + id + "' is a count, which would stay in its " + std::to_string(ind.window_s) +
                        " s window after the step; escalate levels, gauges, booleans or shares");
    if (ind.kind == ValueKind::Text) r.fail(entry, "indicator '" + id + "' is text; use a note step");
    if (id == "agent_spool_depth") r.fail(entry, "indicator '" + id + "' is measured from the agent's real backlog");
    add_unique(out.indicators, *ix);
  }
}

ScenarioStep read_step(const Reader& r, const json& step, std::size_t i, const IndicatorCatalogue& catalogue,
                       const Scenario& s) {
  const std::string entry = step_entry(i);
  if (!step.is_object()) r.fail(entry, "expected an object");
  ScenarioStep out;
  out.index = i;
  std::string action = r.str(step, entry, "action");
  if (!parse_action(action, out.action))
    r.fail(entry, "unknown action '" + action + "' (escalate, silence, broker_outage or note)");
  out.at_s = r.seconds(step, entry, "at_s", 0, false);
  std::string context = " for a " + action + " step";
  switch (out.action) {
    case StepAction::Escalate: {
      r.only_fields(step, entry, {"at_s", "action", "posts", "regions", "indicators", "level", "duration_s", "note"},
                    context);
      read_targets(r, step, entry, catalogue, s, true, out);
      read_indicators(r, step, entry, catalogue, out);
      std::string level = r.str(step, entry, "level");
      if (level == "amber")
        out.level = Alert::Amber;
      else if (level == "red")
        out.level = Alert::Red;
      else
        r.fail(entry, "field 'level' must be \"amber\" or \"red\", not \"" + level + "\"");
      out.duration_s = r.seconds(step, entry, "duration_s", 0, true);
      if (step.contains("note")) out.text = r.note(step, entry);
      break;
    }
    case StepAction::Silence:
      r.only_fields(step, entry, {"at_s", "action", "posts", "regions", "duration_s"}, context);
      read_targets(r, step, entry, catalogue, s, true, out);
      out.duration_s = r.seconds(step, entry, "duration_s", 0, true);
      break;
    case StepAction::BrokerOutage:
      r.only_fields(step, entry, {"at_s", "action", "duration_s"}, context);
      out.duration_s = r.seconds(step, entry, "duration_s", 0, true);
      break;
    case StepAction::Note:
      r.only_fields(step, entry, {"at_s", "action", "posts", "regions", "note"}, context);
      read_targets(r, step, entry, catalogue, s, false, out);
      out.text = r.note(step, entry);
      break;
  }
  return out;
}

// The broker is one thing: two outages at once would restart it in the middle of the other.
void check_outages_apart(const Reader& r, const std::vector<ScenarioStep>& steps) {
  const ScenarioStep* previous = nullptr;
  for (const auto& st : steps) {
    if (st.action != StepAction::BrokerOutage) continue;
    if (previous && st.at_s < previous->end_s())
      r.fail(step_entry(st.index), "broker outage overlaps the one of " + step_entry(previous->index));
    previous = &st;
  }
}

}  // namespace

std::string_view to_string(StepAction action) {
  switch (action) {
    case StepAction::Escalate: return "escalate";
    case StepAction::Silence: return "silence";
    case StepAction::BrokerOutage: return "broker_outage";
    case StepAction::Note: return "note";
  }
  return "note";
}

std::vector<std::uint32_t> Scenario::named_posts() const {
  std::vector<std::uint32_t> out;
  for (const auto& st : steps)
    for (auto p : st.posts) add_unique(out, p);
  return out;
}

double Scenario::length_s() const {
  double end = 0;
  for (const auto& st : steps) end = std::max(end, st.end_s());
  return end;
}

bool Scenario::has(StepAction action) const {
  return std::any_of(steps.begin(), steps.end(), [&](const ScenarioStep& st) { return st.action == action; });
}

Scenario parse_scenario(std::string_view text, const std::string& origin, const IndicatorCatalogue& catalogue) {
  Reader r(origin);
  json root;
  try {
    root = json::parse(text);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for 1e999
    throw ScenarioError(origin + ": not valid JSON: " + e.what());
  }
  if (!root.is_object()) r.fail("(top level)", "expected an object");
  r.only_fields(root, "(top level)",
                {"name", "description", "posts", "regions", "background_episodes", "standing_concerns",
                 "repeat_every_s", "steps"});
  Scenario s;
  s.origin = origin;
  s.name = r.str(root, "name", "name");
  if (!is_valid_node_id(s.name)) r.fail("name", "'" + s.name + "' must match ^[a-z0-9][a-z0-9-]{0,47}$");
  s.description = r.str(root, "description", "description");
  if (s.description.empty() || s.description.find('\n') != std::string::npos)
    r.fail("description", "must be one line of text");
  read_pool(r, root, catalogue, s);
  s.background_episodes = r.boolean(root, "background_episodes", "background_episodes", true);
  s.standing_concerns = r.boolean(root, "standing_concerns", "standing_concerns", true);

  const json& steps = r.member(root, "steps", "steps");
  if (!steps.is_array()) r.fail("steps", "must be an array (it may be empty)");
  for (std::size_t i = 0; i < steps.size(); ++i) s.steps.push_back(read_step(r, steps[i], i, catalogue, s));
  std::stable_sort(s.steps.begin(), s.steps.end(),
                   [](const ScenarioStep& a, const ScenarioStep& b) { return a.at_s < b.at_s; });
  check_outages_apart(r, s.steps);

  if (root.contains("repeat_every_s")) {
    s.repeat_every_s = r.seconds(root, "repeat_every_s", "repeat_every_s", 0, true);
    if (s.repeat_every_s < s.length_s()) {
      std::ostringstream os;
      os << s.repeat_every_s << " s is shorter than the timeline: its last step ends at " << s.length_s() << " s";
      r.fail("repeat_every_s", os.str());
    }
  }
  return s;
}

Scenario load_scenario(const std::filesystem::path& file, const IndicatorCatalogue& catalogue) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw ScenarioError(file.string() + ": cannot open scenario file");
  std::ostringstream ss;
  ss << in.rdbuf();
  return parse_scenario(ss.str(), file.string(), catalogue);
}

std::filesystem::path scenario_file(const std::string& name_or_file, const std::filesystem::path& dir) {
  bool is_path =
      name_or_file.find('/') != std::string::npos || (name_or_file.size() > 5 && name_or_file.ends_with(".json"));
  return is_path ? std::filesystem::path(name_or_file) : dir / (name_or_file + ".json");
}

std::vector<ScenarioListing> list_scenarios(const std::filesystem::path& dir, const IndicatorCatalogue& catalogue) {
  std::vector<ScenarioListing> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.path().extension() != ".json") continue;
    ScenarioListing l;
    l.file = entry.path();
    l.name = entry.path().stem().string();
    try {
      auto s = load_scenario(entry.path(), catalogue);
      l.name = s.name;
      l.description = s.description;
    } catch (const ScenarioError& e) {
      l.error = e.what();
    }
    out.push_back(std::move(l));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.file < b.file; });
  return out;
}

}  // namespace postwatch::sim
