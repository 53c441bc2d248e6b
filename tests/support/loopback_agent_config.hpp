// An in-process agent's config as the tests start from it: the broker, who the agent is, and
// plaintext allowed (the tests' brokers listen on loopback without TLS). The test sets the rest.
// (A child agent's config file: agent_config_file.hpp.)
#pragma once

#include "postwatch/agent/agent_config.hpp"

#include <string>

namespace postwatch::test {

inline agent::AgentConfig loopback_agent_config(const std::string& broker_uri, const std::string& agent_id,
                                                const std::string& post_id) {
  agent::AgentConfig cfg;
  cfg.broker_uri = broker_uri;
  cfg.agent_id = agent_id;
  cfg.post_id = post_id;
  cfg.allow_plaintext = true;
  return cfg;
}

}  // namespace postwatch::test
