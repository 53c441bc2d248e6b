#include "postwatch/agent/bundle_overlay.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>

namespace postwatch::agent {
namespace {

using json = nlohmann::json;

// Whole sections a bundle may replace or patch: batching, heartbeat, inputs and limits.
constexpr std::array kOpenSections = {"batch", "probes", "drop_dir", "local_api"};
constexpr std::array kOpenFields = {"heartbeat_interval_s", "keep_alive_s"};
// Sections of which only some keys are the bundle's: the rest says where data goes and how it
// is protected.
struct PartlyOpen {
  const char* section;
  std::vector<std::string> keys;
};
const std::array<PartlyOpen, 2> kPartlyOpen = {{
    {"spool", {"max_bytes", "max_events", "max_age_s", "segment_bytes", "fsync", "fsync_interval_ms", "overflow"}},
    {"uplink", {"compression", "max_kbit_s"}},
}};

template <typename List>
bool listed(const List& list, const std::string& key) {
  return std::find(list.begin(), list.end(), key) != list.end();
}

void check_patch(const json& patch, bool allow_scripts, std::vector<ConfigProblem>& problems) {
  auto refuse = [&](const std::string& field, const std::string& why) { problems.push_back({"config." + field, why}); };
  for (const auto& [key, value] : patch.items()) {
    if (listed(kOpenSections, key) || listed(kOpenFields, key)) continue;
    if (key == "scripts") {
      if (!allow_scripts)
        refuse(key,
               "may be set by a bundle only where the board's own config says fleet.allow_scripts: true (a script "
               "probe runs a command on the board)");
      continue;
    }
    const std::string& name = key;  // a structured binding cannot be captured before C++20's clang 16
    auto partly =
        std::find_if(kPartlyOpen.begin(), kPartlyOpen.end(), [&](const PartlyOpen& p) { return name == p.section; });
    if (partly != kPartlyOpen.end()) {
      if (!value.is_object()) {
        refuse(key, "must be an object of the fields a bundle may set here");
        continue;
      }
      for (const auto& [sub, _] : value.items())
        if (!listed(partly->keys, sub))
          refuse(key + "." + sub, "may not be changed by a bundle (it stays with the board's own config)");
      continue;
    }
    refuse(key,
           "may not be changed by a bundle: the broker, its credentials, TLS, the agent's identity and its spool's "
           "place stay with the board's own config");
  }
}

}  // namespace

std::string apply_config_overlay(std::string_view config_text, std::string_view overlay,
                                 std::vector<ConfigProblem>& problems) {
  json config, patch;
  try {
    config = json::parse(config_text);
  } catch (const json::exception& e) {
    problems.push_back({"", std::string("not valid JSON: ") + e.what()});
    return {};
  }
  try {
    patch = json::parse(overlay);
  } catch (const json::exception& e) {
    problems.push_back({"config", std::string("the bundle's overlay is not valid JSON: ") + e.what()});
    return {};
  }
  if (!config.is_object()) {
    problems.push_back({"", "expected a JSON object"});
    return {};
  }
  if (!patch.is_object()) {
    problems.push_back({"config", "the bundle's overlay must be a JSON object"});
    return {};
  }
  bool allow_scripts = false;
  if (auto fleet = config.find("fleet"); fleet != config.end() && fleet->is_object())
    if (auto a = fleet->find("allow_scripts"); a != fleet->end() && a->is_boolean()) allow_scripts = a->get<bool>();
  const auto before = problems.size();
  check_patch(patch, allow_scripts, problems);
  if (problems.size() != before) return {};
  config.merge_patch(patch);
  return config.dump(2);
}

}  // namespace postwatch::agent
