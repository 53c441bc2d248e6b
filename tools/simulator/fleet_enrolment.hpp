// Enrols every simulated agent as a deployed one enrols (docs/security.md, "Enrolment"): a
// one-time token from the aggregator's API (operator role), then the agent library's own
// enrol_agent over MQTT. Each agent's key and the aggregator's public key go to
// <dir>/<agent id>/, and the agents then sign everything they publish: a signed fleet of
// hundreds, to try key rotation and verification at the scale users run (docs/simulator.md).
#pragma once

#include "fleet.hpp"

#include "postwatch/agent/agent_config.hpp"
#include "postwatch/catalogue.hpp"

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

namespace spdlog {
class logger;
}

namespace postwatch::sim {

struct FleetEnrolment {
  std::string api;            // the aggregator's HTTP address: http://host:port
  std::string bearer;         // an operator token of the aggregator's --tokens-file
  std::filesystem::path dir;  // where each agent's identity files go
  std::size_t parallel = 32;  // enrolments at once: each waits about a second for the store
};

// Where `spec`'s agent keeps its key and the aggregator's: <dir>/<agent id>/.
agent::IdentityConfig identity_of(const AgentSpec& spec);

// Sets each spec's identity_dir and enrols it. Throws std::runtime_error naming the first agent
// that could not enrol and why (a refused token request says the aggregator's answer).
void enrol_fleet(std::vector<AgentSpec>& specs, const IndicatorCatalogue& catalogue,
                 const std::filesystem::path& catalogue_file, const FleetEnrolment& how, spdlog::logger& log);

}  // namespace postwatch::sim
