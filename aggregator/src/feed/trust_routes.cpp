// The agents' keys and their enrolment (docs/security.md): GET /api/v1/agent-keys, and with
// an operator token POST /api/v1/enrolment-tokens and POST /api/v1/agent-keys/{post}/{agent}/revoke.
#include "feed/trust_routes.hpp"

#include "postwatch/clock.hpp"
#include "trust/agent_trust.hpp"

#include <nlohmann/json.hpp>

namespace postwatch::aggregator {
using nlohmann::json;

namespace {
constexpr std::int64_t kDefaultTokenMinutes = 24 * 60;
constexpr std::int64_t kMaxTokenMinutes = 30 * 24 * 60;

bool id_ok(const std::string& s) {
  return !s.empty() && s.size() <= 64 &&
         s.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-") == std::string::npos;
}
}  // namespace

HttpResponse TrustRoutes::agent_keys() const {
  if (!trust_) return error_response(http::status::service_unavailable, "agent keys are not kept here");
  return json_response(http::status::ok, trust_->keys_json(now_utc_ms()));
}

HttpResponse TrustRoutes::issue_token(const HttpRequest& req, const Principal* who) {
  if (!trust_) return error_response(http::status::service_unavailable, "agent keys are not kept here");
  if (auto refusal = refuse_non_json(req)) return *refusal;
  auto body = json::parse(req.body(), nullptr, false);
  if (!body.is_object()) return error_response(http::status::bad_request, "the body is not a JSON object");
  auto post = body.value("post", json()), agent = body.value("agent", json());
  if (!post.is_string() || !agent.is_string() || !id_ok(post.get<std::string>()) || !id_ok(agent.get<std::string>()))
    return error_response(http::status::bad_request,
                          "post and agent are required: ids of lower-case letters, digits and '-', at most 64");
  auto minutes = body.value("valid_minutes", json(kDefaultTokenMinutes));
  if (!minutes.is_number_integer() || minutes.get<std::int64_t>() < 1 || minutes.get<std::int64_t>() > kMaxTokenMinutes)
    return error_response(http::status::bad_request, "valid_minutes must be a whole number from 1 to " +
                                                         std::to_string(kMaxTokenMinutes) + " (30 days)");
  const auto now = now_utc_ms();
  try {
    auto issued = trust_->issue(catalogue_, post.get<std::string>(), agent.get<std::string>(),
                                minutes.get<std::int64_t>() * 60'000, who ? who->name : std::string(), now);
    const auto& t = *issued.token;
    return json_response(http::status::created, {{"token", issued.text},
                                                 {"id", t.id},
                                                 {"post", t.post},
                                                 {"agent", t.agent},
                                                 {"expires_at", iso_utc(t.expires_at_ms)},
                                                 {"expires_at_ms", t.expires_at_ms}});
  } catch (const std::invalid_argument& e) {
    return error_response(http::status::not_found, e.what());
  }
}

HttpResponse TrustRoutes::revoke_key(std::string_view post_agent, const Principal* who) {
  if (!trust_) return error_response(http::status::service_unavailable, "agent keys are not kept here");
  auto slash = post_agent.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == post_agent.size())
    return error_response(http::status::bad_request, "revoke a key as /api/v1/agent-keys/{post}/{agent}/revoke");
  std::string post(post_agent.substr(0, slash)), agent(post_agent.substr(slash + 1));
  const AgentKey* k = trust_->revoke(post, agent, who ? who->name : std::string(), now_utc_ms());
  if (!k) return error_response(http::status::not_found, "agent " + post + "/" + agent + " has no key in force");
  return json_response(http::status::ok, AgentTrust::key_json(*k, now_utc_ms()));
}

}  // namespace postwatch::aggregator
