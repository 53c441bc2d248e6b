// `postwatch-agent enrol` (docs/security.md, "Enrolment"): makes the agent's key on the board
// (or reuses the one a broken-off enrolment left), proves to the aggregator that it holds the
// operations centre's one-time token, and on acceptance writes the aggregator's public key
// from the token beside it. From then on the agent signs what it publishes.
#pragma once

#include "postwatch/agent/agent_config.hpp"
#include "postwatch/catalogue.hpp"

#include <chrono>
#include <string>

namespace spdlog {
class logger;
}

namespace postwatch::agent {

struct EnrolOutcome {
  int exit_code = 1;    // 0 enrolled, 1 refused or failed, 3 no answer in time
  std::string message;  // one line for the operator
};

EnrolOutcome enrol_agent(const AgentConfig& config, const IndicatorCatalogue& catalogue, const std::string& token_text,
                         std::chrono::seconds timeout, spdlog::logger& log);

}  // namespace postwatch::agent
