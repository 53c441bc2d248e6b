// /api/v1/rollouts: staged rollouts of fleet bundles (docs/fleet.md, "Rollouts").
#pragma once

#include "feed/access.hpp"
#include "feed/http_helpers.hpp"
#include "ingest/agent_table.hpp"
#include "postwatch/catalogue.hpp"

namespace postwatch::aggregator {

class RolloutDesk;

class RolloutRoutes {
 public:
  // rollouts: null when this aggregator keeps none (503).
  RolloutRoutes(const IndicatorCatalogue& catalogue, const AgentTable& agents, RolloutDesk* rollouts)
      : catalogue_(catalogue), agents_(agents), rollouts_(rollouts) {}
  HttpResponse rollouts() const;
  HttpResponse rollout(std::string_view id) const;
  HttpResponse create_rollout(const HttpRequest& req, const Principal* who);
  HttpResponse change_rollout(std::string_view id, std::string_view action, const Principal* who);

 private:
  const IndicatorCatalogue& catalogue_;
  const AgentTable& agents_;
  RolloutDesk* rollouts_;
};

}  // namespace postwatch::aggregator
