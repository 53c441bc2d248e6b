#include "postwatch/catalogue.hpp"

#include "catalogue_reader.hpp"

#include "postwatch/whole_file.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>

namespace postwatch {

std::filesystem::path default_catalogue_path() {
  for (std::filesystem::path p : {"/usr/share/postwatch/gbvs.json", "/usr/local/share/postwatch/gbvs.json"})
    if (std::filesystem::exists(p)) return p;
#ifdef POSTWATCH_SOURCE_CATALOGUE
  if (std::filesystem::path p = POSTWATCH_SOURCE_CATALOGUE; std::filesystem::exists(p)) return p;
#endif
  return "/usr/share/postwatch/gbvs.json";
}

using nlohmann::json;

std::string_view to_string(Aggregation a) { return catalogue_reading::kAggregationNames.name(a); }

bool is_valid_node_id(std::string_view id) {
  if (id.empty() || id.size() > 48) return false;
  for (std::size_t i = 0; i < id.size(); ++i) {
    char c = id[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (i > 0 && c == '-');
    if (!ok) return false;
  }
  return true;
}

namespace catalogue_reading {

std::string entry_name(const char* section, std::size_t i, const std::string& id) {
  std::ostringstream os;
  os << section << "[" << i << "]";
  if (!id.empty()) os << " '" << id << "'";
  return os.str();
}

std::string read_id(const CatalogueReader& r, const json& j, const char* section, std::size_t i, std::string& entry) {
  std::string id = r.str(j, entry_name(section, i, ""), "id");
  entry = entry_name(section, i, id);
  return id;
}

namespace {

// A list of goal numbers, each one the catalogue defines.
std::vector<int> read_goal_refs(const CatalogueReader& r, const json& j, const std::string& entry,
                                const std::set<int>& goal_ids) {
  std::vector<int> out;
  for (const auto& g : r.array(j, entry, "goals")) {
    int id = r.integer(g, entry, "goal reference");
    if (!goal_ids.count(id)) r.fail(entry, "unknown goal " + std::to_string(id));
    out.push_back(id);
  }
  return out;
}

std::string fnv1a_hex(std::string_view text) {
  std::uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

// The catalogue's sections, read in the order their references need: pillars name goals,
// threats name goals, posts name regions, indicators name goals and threats.

std::uint32_t read_version(const CatalogueReader& r, const json& root) {
  auto v = root.find("catalogue_version");
  if (v == root.end()) return 0;
  if (!v->is_number_unsigned() || v->get<std::uint64_t>() > 0xffffffffu)
    r.fail("(top level)", "catalogue_version must be a whole number from 0");
  return static_cast<std::uint32_t>(v->get<std::uint64_t>());
}

std::vector<Goal> read_goals(const CatalogueReader& r, const json& root) {
  std::vector<Goal> out;
  std::set<int> ids;
  const auto& goals = r.array(root, "(top level)", "goals");
  for (std::size_t i = 0; i < goals.size(); ++i) {
    const auto& g = goals[i];
    std::string entry = entry_name("goals", i, "");
    Goal goal;
    goal.id = r.integer(r.member(g, entry, "id"), entry, "field 'id'");
    entry = entry_name("goals", i, std::to_string(goal.id));
    goal.pillar = r.str(g, entry, "pillar");
    goal.name = r.str(g, entry, "name");
    goal.aims = r.str(g, entry, "aims", false);
    if (goal.id < 1) r.fail(entry, "goal id must be 1 or more");
    if (!ids.insert(goal.id).second) r.fail(entry, "duplicate goal id");
    out.push_back(std::move(goal));
  }
  return out;
}

// Every goal in exactly one pillar, the one it names.
std::vector<Pillar> read_pillars(const CatalogueReader& r, const json& root, const std::vector<Goal>& goals,
                                 const std::set<int>& goal_ids) {
  std::vector<Pillar> out;
  const auto& pillars = r.array(root, "(top level)", "pillars");
  std::set<int> goals_in_pillars;
  for (std::size_t i = 0; i < pillars.size(); ++i) {
    const auto& p = pillars[i];
    Pillar pillar;
    std::string entry;
    pillar.id = read_id(r, p, "pillars", i, entry);
    pillar.name = r.str(p, entry, "name");
    pillar.name_nl = r.str(p, entry, "name_nl", false);
    pillar.goals = read_goal_refs(r, p, entry, goal_ids);
    for (int id : pillar.goals)
      if (!goals_in_pillars.insert(id).second)
        r.fail(entry, "goal " + std::to_string(id) + " is in more than one pillar");
    out.push_back(std::move(pillar));
  }
  for (const auto& g : goals) {
    auto it = std::find_if(out.begin(), out.end(), [&](const Pillar& p) { return p.id == g.pillar; });
    if (it == out.end()) r.fail("goals '" + std::to_string(g.id) + "'", "unknown pillar '" + g.pillar + "'");
    if (std::find(it->goals.begin(), it->goals.end(), g.id) == it->goals.end())
      r.fail("goals '" + std::to_string(g.id) + "'", "pillar '" + g.pillar + "' does not list this goal");
  }
  return out;
}

// A section whose entries have string ids: each entry read by `read_entry(entry json, index,
// entry name)`, which names the entry through read_id; a second entry with the same id refused.
template <typename T, typename ReadEntry>
std::vector<T> read_id_section(const CatalogueReader& r, const json& root, const char* section, const char* what,
                               ReadEntry read_entry) {
  std::vector<T> out;
  std::set<std::string> ids;
  const auto& entries = r.array(root, "(top level)", section);
  for (std::size_t i = 0; i < entries.size(); ++i) {
    std::string entry;
    T t = read_entry(entries[i], i, entry);
    if (!ids.insert(t.id).second) r.fail(entry, std::string("duplicate ") + what + " id");
    out.push_back(std::move(t));
  }
  return out;
}

std::vector<Threat> read_threats(const CatalogueReader& r, const json& root, const std::set<int>& goal_ids) {
  if (!root.contains("threats")) return {};
  return read_id_section<Threat>(r, root, "threats", "threat", [&](const json& j, std::size_t i, std::string& entry) {
    Threat t;
    t.id = read_id(r, j, "threats", i, entry);
    t.name = r.str(j, entry, "name");
    t.goals = read_goal_refs(r, j, entry, goal_ids);
    return t;
  });
}

std::vector<Region> read_regions(const CatalogueReader& r, const json& root) {
  return read_id_section<Region>(r, root, "regions", "region", [&](const json& j, std::size_t i, std::string& entry) {
    Region reg;
    reg.id = read_id(r, j, "regions", i, entry);
    reg.name = r.str(j, entry, "name");
    if (!is_valid_node_id(reg.id)) r.fail(entry, "id must match ^[a-z0-9][a-z0-9-]{0,47}$");
    return reg;
  });
}

template <typename RegionIndex>
std::vector<Post> read_posts(const CatalogueReader& r, const json& root, const RegionIndex& regions) {
  return read_id_section<Post>(r, root, "posts", "post", [&](const json& j, std::size_t i, std::string& entry) {
    Post p;
    p.id = read_id(r, j, "posts", i, entry);
    p.city = r.str(j, entry, "city");
    p.country = r.str(j, entry, "country");
    p.region = r.str(j, entry, "region");
    p.name_on_cover = r.str(j, entry, "name_on_cover", false);
    if (j.contains("kind")) p.kind = r.one_of(j, entry, "kind", kPostKindNames);
    if (!is_valid_node_id(p.id)) r.fail(entry, "id must match ^[a-z0-9][a-z0-9-]{0,47}$");
    if (!regions.count(p.region)) r.fail(entry, "unknown region '" + p.region + "'");
    return p;
  });
}

}  // namespace
}  // namespace catalogue_reading

IndicatorCatalogue IndicatorCatalogue::load(const std::filesystem::path& file) {
  auto text = read_whole_file(file);
  if (!text) throw CatalogueError(file.string() + ": cannot open catalogue file");
  return parse(*text, file.string());
}

IndicatorCatalogue IndicatorCatalogue::parse(std::string_view text, const std::string& origin) {
  using namespace catalogue_reading;
  CatalogueReader r(origin);
  json root;
  try {
    root = json::parse(text);
  } catch (const json::exception& e) {
    // parse_error and out_of_range (a number too large for a double) both mean bad JSON.
    throw CatalogueError(origin + ": not valid JSON: " + e.what());
  }
  if (!root.is_object()) r.fail("(top level)", "expected an object");
  IndicatorCatalogue c;
  c.fingerprint_ = fnv1a_hex(text);
  c.version_ = read_version(r, root);
  c.goals_ = read_goals(r, root);
  std::set<int> goal_ids;
  for (const auto& g : c.goals_) goal_ids.insert(g.id);
  c.pillars_ = read_pillars(r, root, c.goals_, goal_ids);
  c.threats_ = read_threats(r, root, goal_ids);
  c.regions_ = read_regions(r, root);
  for (std::uint32_t i = 0; i < c.regions_.size(); ++i) c.region_ix_.emplace(c.regions_[i].id, i);
  c.posts_ = read_posts(r, root, c.region_ix_);
  for (std::uint32_t i = 0; i < c.posts_.size(); ++i) c.post_ix_.emplace(c.posts_[i].id, i);
  std::set<std::string> threat_ids;
  for (const auto& t : c.threats_) threat_ids.insert(t.id);
  c.indicators_ = read_indicators(r, root, goal_ids, threat_ids);
  for (std::uint32_t i = 0; i < c.indicators_.size(); ++i) c.indicator_ix_.emplace(c.indicators_[i].id, i);
  if (c.goals_.empty()) r.fail("goals", "the catalogue defines no goals");
  if (c.posts_.empty()) r.fail("posts", "the catalogue defines no posts");
  if (c.indicators_.empty()) r.fail("indicators", "the catalogue defines no indicators");
  return c;
}

namespace {
template <typename Map>
std::optional<std::uint32_t> lookup(const Map& m, std::string_view id) {
  auto it = m.find(id);
  if (it == m.end()) return std::nullopt;
  return it->second;
}
}  // namespace

std::optional<std::uint32_t> IndicatorCatalogue::indicator_index(std::string_view id) const {
  return lookup(indicator_ix_, id);
}
std::optional<std::uint32_t> IndicatorCatalogue::post_index(std::string_view id) const { return lookup(post_ix_, id); }
std::optional<std::uint32_t> IndicatorCatalogue::region_index(std::string_view id) const {
  return lookup(region_ix_, id);
}

std::vector<std::uint32_t> IndicatorCatalogue::posts_of_kind(PostKind kind) const {
  std::vector<std::uint32_t> out;
  for (std::uint32_t p = 0; p < posts_.size(); ++p)
    if (posts_[p].kind == kind) out.push_back(p);
  return out;
}

const Indicator* IndicatorCatalogue::find_indicator(std::string_view id) const {
  auto ix = indicator_index(id);
  return ix ? &indicators_[*ix] : nullptr;
}
const Post* IndicatorCatalogue::find_post(std::string_view id) const {
  auto ix = post_index(id);
  return ix ? &posts_[*ix] : nullptr;
}
const Goal* IndicatorCatalogue::find_goal(int id) const {
  for (const auto& g : goals_)
    if (g.id == id) return &g;
  return nullptr;
}

std::string IndicatorCatalogue::check_value(const Post& post, const Indicator& ind, ValueKind kind, double number,
                                            std::string_view text) const {
  if (ind.reported_by == Reporter::Ministry && !post.is_ministry())
    return "indicator '" + ind.id + "' is reported by the ministry, not by post '" + post.id + "'";
  return check_value(ind, kind, number, text);
}

std::string IndicatorCatalogue::check_value(const Indicator& ind, ValueKind kind, double number,
                                            std::string_view text) const {
  if (kind != ind.kind)
    return "indicator '" + ind.id + "' takes a " + std::string(to_string(ind.kind)) + " value, not a " +
           std::string(to_string(kind));
  if (kind == ValueKind::Text) {
    if (text.empty()) return "indicator '" + ind.id + "' needs a non-empty text";
    return {};
  }
  if (!std::isfinite(number)) return "value must be a finite number";
  if (number < ind.min || number > ind.max) {
    std::ostringstream os;
    os << "value " << number << " is outside [" << ind.min << ", " << ind.max << "] for indicator '" << ind.id << "'";
    return os.str();
  }
  if ((kind == ValueKind::Level || kind == ValueKind::Count || kind == ValueKind::Boolean) &&
      number != std::floor(number))
    return "indicator '" + ind.id + "' takes whole numbers";
  return {};
}

}  // namespace postwatch
