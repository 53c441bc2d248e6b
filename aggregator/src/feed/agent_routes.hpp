// /api/v1/agents and /api/v1/agents/{post}/{agent}: what each agent announced (birth,
// heartbeat), what ingest counted of its events, its clock and its key.
#pragma once

#include "feed/http_helpers.hpp"
#include "ingest/agent_presence.hpp"
#include "ingest/agent_table.hpp"
#include "postwatch/catalogue.hpp"

#include <nlohmann/json_fwd.hpp>

namespace postwatch::aggregator {

class AgentTrust;

class AgentRoutes {
 public:
  // trust: the agents' keys; null: none kept (key_id and enrolled_at are null).
  AgentRoutes(const IndicatorCatalogue& catalogue, const AgentTable& agents, const AgentPresence& presence,
              const AgentTrust* trust)
      : catalogue_(catalogue), agents_(agents), presence_(presence), trust_(trust) {}
  HttpResponse agents() const;
  HttpResponse agent(std::string_view key) const;

 private:
  // "key_id" and "enrolled_at" of the agent's key in force (null when it has none).
  void add_agent_key(nlohmann::json& agent_json, const std::string& post, const std::string& agent) const;

  const IndicatorCatalogue& catalogue_;
  const AgentTable& agents_;
  const AgentPresence& presence_;
  const AgentTrust* trust_;
};

// The agent's clock as the API shows it: sync status, offset, correction, jumps.
nlohmann::json agent_clock_json(const AgentRecord& r);

}  // namespace postwatch::aggregator
