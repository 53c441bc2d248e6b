// Reading a catalogue file's sections (IndicatorCatalogue::parse): what the section readers of
// catalogue.cpp and catalogue_indicators.cpp share. Private to common/src.
#pragma once

#include "postwatch/catalogue.hpp"
#include "postwatch/name_table.hpp"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstddef>
#include <set>
#include <string>
#include <vector>

namespace postwatch::catalogue_reading {

using nlohmann::json;

// The names the catalogue file gives its enums' values.
inline constexpr NameTable<Direction, 2> kDirectionNames{
    {{Direction::HigherIsWorse, "higher_is_worse"}, {Direction::LowerIsWorse, "lower_is_worse"}}};
inline constexpr NameTable<Aggregation, 4> kAggregationNames{
    {{Aggregation::Max, "max"}, {Aggregation::Sum, "sum"}, {Aggregation::Mean, "mean"}, {Aggregation::Min, "min"}}};
inline constexpr NameTable<Reporter, 2> kReporterNames{{{Reporter::Posts, "posts"}, {Reporter::Ministry, "ministry"}}};
inline constexpr NameTable<PostKind, 2> kPostKindNames{{{PostKind::Post, "post"}, {PostKind::Ministry, "ministry"}}};
inline constexpr NameTable<Urgency, 3> kUrgencyNames{
    {{Urgency::No, "no"}, {Urgency::AtRed, "at_red"}, {Urgency::Always, "always"}}};

// Builds error messages of the form "<file>: <entry>: <problem>".
class CatalogueReader {
 public:
  explicit CatalogueReader(std::string origin) : origin_(std::move(origin)) {}

  [[noreturn]] void fail(const std::string& entry, const std::string& problem) const {
    throw CatalogueError(origin_ + ": " + entry + ": " + problem);
  }

  const json& member(const json& obj, const std::string& entry, const char* key) const {
    if (!obj.is_object()) fail(entry, "expected an object");
    auto it = obj.find(key);
    if (it == obj.end()) fail(entry, std::string("missing field '") + key + "'");
    return *it;
  }
  std::string str(const json& obj, const std::string& entry, const char* key, bool required = true) const {
    if (!required && !obj.contains(key)) return {};
    const auto& v = member(obj, entry, key);
    if (!v.is_string()) fail(entry, std::string("field '") + key + "' must be a string");
    return v.get<std::string>();
  }  // A field naming one of an enum's values ("direction 'x' is not higher_is_worse or ...").
  template <typename E, std::size_t N>
  E one_of(const json& obj, const std::string& entry, const char* key, const NameTable<E, N>& names) const {
    const std::string v = str(obj, entry, key);
    if (auto e = names.parse(v)) return *e;
    fail(entry, std::string(key) + " '" + v + "' is not " + names.listed());
  }

  double num(const json& obj, const std::string& entry, const char* key) const {
    const auto& v = member(obj, entry, key);
    if (!v.is_number()) fail(entry, std::string("field '") + key + "' must be a number");
    double d = v.get<double>();
    if (!std::isfinite(d)) fail(entry, std::string("field '") + key + "' must be finite");
    return d;
  }
  int integer(const json& v, const std::string& entry, const char* what) const {
    if (!v.is_number_integer()) fail(entry, std::string(what) + " must be an integer");
    return v.get<int>();
  }
  const json& array(const json& obj, const std::string& entry, const char* key) const {
    const auto& v = member(obj, entry, key);
    if (!v.is_array()) fail(entry, std::string("field '") + key + "' must be an array");
    return v;
  }

 private:
  std::string origin_;
};

// "indicators[3] 'x'": how errors name a section's entry.
std::string entry_name(const char* section, std::size_t i, const std::string& id);

// A section entry's string id; `entry` becomes the name errors use for it ("posts 'x'").
std::string read_id(const CatalogueReader& r, const json& j, const char* section, std::size_t i, std::string& entry);

// The indicators section (catalogue_indicators.cpp); goals and threats are read before it.
std::vector<Indicator> read_indicators(const CatalogueReader& r, const json& root, const std::set<int>& goal_ids,
                                       const std::set<std::string>& threat_ids);

}  // namespace postwatch::catalogue_reading
