// The agents' keys and their enrolment (docs/security.md): /api/v1/agent-keys,
// /api/v1/enrolment-tokens, /api/v1/agent-keys/{post}/{agent}/revoke.
#pragma once

#include "feed/access.hpp"
#include "feed/http_helpers.hpp"
#include "postwatch/catalogue.hpp"

namespace postwatch::aggregator {

class AgentTrust;

class TrustRoutes {
 public:
  // trust: null when no keys are kept here (503).
  TrustRoutes(const IndicatorCatalogue& catalogue, AgentTrust* trust) : catalogue_(catalogue), trust_(trust) {}
  HttpResponse agent_keys() const;
  HttpResponse issue_token(const HttpRequest& req, const Principal* who);
  HttpResponse revoke_key(std::string_view post_agent, const Principal* who);

 private:
  const IndicatorCatalogue& catalogue_;
  AgentTrust* trust_;
};

}  // namespace postwatch::aggregator
