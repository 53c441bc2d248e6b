// A FleetReport as JSON: one field list for the agent's status file and /api/v1/agents
// (docs/fleet.md, "Reporting"; openapi AgentFleet).
#pragma once

#include "postwatch/event.hpp"
#include "postwatch/fleet_bundle.hpp"

#include <nlohmann/json.hpp>

#include <string>

namespace postwatch {

inline nlohmann::json fleet_report_json(const FleetReport& f) {
  return {{"config_bundle", f.config_bundle},
          {"catalogue_bundle", f.catalogue_bundle},
          {"catalogue_version", f.catalogue_version},
          {"last_outcome", std::string(to_string(f.last_outcome))},
          {"last_version", f.last_version},
          {"last_reason", f.last_reason},
          {"applied", f.applied},
          {"rolled_back", f.rolled_back},
          {"refused", f.refused}};
}

}  // namespace postwatch
