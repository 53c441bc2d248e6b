// How the agent's config file is read field by field (agent_config_sections.cpp,
// agent_config_inputs.cpp): every problem is recorded, none stops the reading.
#pragma once

#include "postwatch/agent/agent_config.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace postwatch::agent {

// Reads fields and records every problem instead of stopping at the first one.
class FieldReader {
 public:
  using json = nlohmann::json;

  explicit FieldReader(std::vector<ConfigProblem>& problems) : problems_(problems) {}

  void fail(const std::string& field, const std::string& what) { problems_.push_back({field, what, false}); }
  static const json* find(const json& obj, const char* key) {
    auto it = obj.find(key);
    return it == obj.end() ? nullptr : &*it;
  }
  void str(const json& obj, const std::string& path, const char* key, std::string& out, bool required = false) {
    const json* v = find(obj, key);
    if (!v) {
      if (required) fail(path + key, "missing (required)");
      return;
    }
    if (!v->is_string()) return fail(path + key, "must be a string");
    out = v->get<std::string>();
  }
  template <typename Int>
  void uint(const json& obj, const std::string& path, const char* key, Int& out, std::int64_t lo, std::int64_t hi) {
    const json* v = find(obj, key);
    if (!v) return;
    if (!v->is_number_integer()) return fail(path + key, "must be a whole number");
    auto n = v->get<std::int64_t>();
    if (n < lo || n > hi)
      return fail(path + key, "must be between " + std::to_string(lo) + " and " + std::to_string(hi));
    out = static_cast<Int>(n);
  }
  // A count of seconds within [lo, hi]; `def` if absent or wrong.
  std::chrono::seconds seconds(const json& obj, const std::string& path, const char* key, std::chrono::seconds def,
                               std::int64_t lo, std::int64_t hi) {
    std::int64_t n = def.count();
    uint(obj, path, key, n, lo, hi);
    return std::chrono::seconds(n);
  }
  void boolean(const json& obj, const std::string& path, const char* key, bool& out) {
    const json* v = find(obj, key);
    if (!v) return;
    if (!v->is_boolean()) return fail(path + key, "must be true or false");
    out = v->get<bool>();
  }
  // A section that must be an object and may only hold `known` keys; null if absent or not an object.
  const json* section(const json& root, const char* key, const std::vector<std::string>& known) {
    const json* s = find(root, key);
    if (!s) return nullptr;
    if (!s->is_object()) {
      fail(key, "must be an object");
      return nullptr;
    }
    unknown_keys(*s, std::string(key) + ".", known);
    return s;
  }
  void unknown_keys(const json& obj, const std::string& path, const std::vector<std::string>& known) {
    for (const auto& [k, _] : obj.items())
      if (std::find(known.begin(), known.end(), k) == known.end()) {
        std::string hint;
        for (const auto& candidate : known) {
          if (!hint.empty()) hint += ", ";
          hint += candidate;
        }
        fail(path + k, "unknown setting (known here: " + hint + ")");
      }
  }

 private:
  std::vector<ConfigProblem>& problems_;
};

// Paths in the file are relative to the file's directory.
inline std::string resolve_config_path(const std::filesystem::path& file, const std::string& path) {
  if (path.empty()) return path;
  return (file.parent_path() / path).string();
}

}  // namespace postwatch::agent
