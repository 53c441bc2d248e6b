// The aggregator's own key rotation (docs/security.md, "The aggregator's key"):
// /api/v1/aggregator-key, /api/v1/aggregator-key/next, /api/v1/aggregator-key/switch.
#pragma once

#include "feed/access.hpp"
#include "feed/http_helpers.hpp"
#include "ingest/agent_table.hpp"
#include "postwatch/catalogue.hpp"

#include <nlohmann/json_fwd.hpp>

#include <functional>

namespace postwatch::aggregator {

class AgentTrust;

class AggregatorKeyRoutes {
 public:
  // trust: null when no keys are kept here (503); cluster: /api/v1/cluster's answer, empty
  // when not clustered (a clustered instance does not rotate its key).
  AggregatorKeyRoutes(const IndicatorCatalogue& catalogue, const AgentTable& agents, AgentTrust* trust,
                      std::function<nlohmann::json()> cluster)
      : catalogue_(catalogue), agents_(agents), trust_(trust), cluster_(std::move(cluster)) {}
  HttpResponse aggregator_key() const;
  HttpResponse prepare_aggregator_key(const Principal* who);
  HttpResponse switch_aggregator_key(const HttpQuery& q, const Principal* who);

 private:
  nlohmann::json aggregator_key_json() const;
  bool clustered() const;  // an instance of a JetStream cluster

  const IndicatorCatalogue& catalogue_;
  const AgentTable& agents_;
  AgentTrust* trust_;
  std::function<nlohmann::json()> cluster_;
};

}  // namespace postwatch::aggregator
