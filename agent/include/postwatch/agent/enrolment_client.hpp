// `postwatch-agent enrol` (docs/security.md, "Enrolment"): makes the agent's key on the board
// (or reuses the one a broken-off enrolment left), proves to the aggregator that it holds the
// operations centre's one-time token, and on acceptance writes the aggregator's public key
// from the token beside it. From then on the agent signs what it publishes.
#pragma once

#include "postwatch/agent/agent_config.hpp"
#include "postwatch/catalogue.hpp"

#include <chrono>
#include <filesystem>
#include <string>

namespace spdlog {
class logger;
}

namespace postwatch::agent {

struct EnrolOutcome {
  int exit_code = 1;    // 0 done, 1 refused or failed, 2 bad token or config, 3 no answer in time
  std::string message;  // one line for the operator
};

EnrolOutcome enrol_agent(const AgentConfig& config, const IndicatorCatalogue& catalogue, const std::string& token_text,
                         std::chrono::seconds timeout, spdlog::logger& log);

// `postwatch-agent rotate-key` (docs/security.md, "Rotation"): makes a new key in
// <identity.key_file>.next, sends its public half endorsed by the key in force, and on the
// aggregator's signed acceptance renames it over identity.key_file. Exit codes as enrol; 2 also
// when the agent is not enrolled.
EnrolOutcome rotate_agent_key(const AgentConfig& config, const IndicatorCatalogue& catalogue,
                              std::chrono::seconds timeout, spdlog::logger& log);
// Where a rotation's new key waits until the aggregator accepted it.
std::filesystem::path pending_key_file(const AgentConfig& config);

}  // namespace postwatch::agent
