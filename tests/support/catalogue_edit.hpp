// The installed catalogue with one more indicator, as a fleet rollout of a new indicator carries
// it (docs/fleet.md, "A new indicator"): a copy of the first indicator under `id`, never urgent,
// at catalogue_version `version`. Shared by the rollout tests and postwatch-bench-rollout.
#pragma once

#include "support/test_support.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <fstream>
#include <string>

namespace postwatch::test {

inline nlohmann::json installed_catalogue_json() {
  std::ifstream in(catalogue_path());
  return nlohmann::json::parse(in);
}

inline nlohmann::json catalogue_with_indicator(const std::string& id, const std::string& name, std::uint32_t version) {
  auto cat = installed_catalogue_json();
  nlohmann::json ind = cat["indicators"][0];
  ind["id"] = id;
  ind["name"] = name;
  ind["urgent"] = "no";
  cat["indicators"].push_back(std::move(ind));
  cat["catalogue_version"] = version;
  return cat;
}

}  // namespace postwatch::test
