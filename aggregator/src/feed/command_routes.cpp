// /api/v1/commands: remote commands to one agent (docs/fleet.md, "Remote commands"). Listing
// needs a read token; sending one needs an operator token, as starting a rollout does.
#include "feed/command_routes.hpp"

#include "postwatch/clock.hpp"
#include "rollouts/command_desk.hpp"

#include <nlohmann/json.hpp>

#include <stdexcept>

namespace postwatch::aggregator {
using nlohmann::json;

namespace {
constexpr std::size_t kListed = 200;
constexpr std::int64_t kDefaultTtlS = 3600;
}  // namespace

HttpResponse CommandRoutes::commands() const {
  if (!commands_) return error_response(http::status::service_unavailable, "remote commands are not available");
  json list = json::array();
  for (const auto* c : commands_->newest(kListed)) list.push_back(c->to_json());
  return json_response(http::status::ok, {{"commands", std::move(list)}});
}

HttpResponse CommandRoutes::command(std::string_view id) const {
  if (!commands_) return error_response(http::status::service_unavailable, "remote commands are not available");
  const auto* c = commands_->find(std::string(id));
  if (!c) return error_response(http::status::not_found, "no command '" + std::string(id) + "'");
  return json_response(http::status::ok, c->to_json());
}

HttpResponse CommandRoutes::send_command(const HttpRequest& req, const Principal* who) {
  if (!commands_) return error_response(http::status::service_unavailable, "remote commands are not available");
  if (auto refusal = refuse_non_json(req)) return *refusal;
  auto body = json::parse(req.body(), nullptr, false);
  if (!body.is_object()) return error_response(http::status::bad_request, "the body is not a JSON object");
  for (const auto& [key, _] : body.items())
    if (key != "post" && key != "agent" && key != "command" && key != "seq" && key != "probe" && key != "ttl_s")
      return error_response(http::status::bad_request,
                            "unknown field '" + key + "' (post, agent, command, seq, probe, ttl_s)");
  auto text = [&](const char* key) {
    auto it = body.find(key);
    return it != body.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  const auto post = text("post"), agent = text("agent");
  FleetCommand c;
  c.name = text("command");
  c.probe = text("probe");
  if (post.empty() || agent.empty() || c.name.empty())
    return error_response(http::status::bad_request, "post, agent and command are needed (strings)");
  if (auto it = body.find("seq"); it != body.end()) {
    if (!it->is_number_unsigned()) return error_response(http::status::bad_request, "seq must be a whole number");
    c.seq = it->get<std::uint64_t>();
  }
  std::int64_t ttl_s = kDefaultTtlS;
  if (auto it = body.find("ttl_s"); it != body.end()) {
    if (!it->is_number_integer()) return error_response(http::status::bad_request, "ttl_s must be a whole number");
    ttl_s = it->get<std::int64_t>();
  }
  auto p = catalogue_.post_index(post);
  if (!p) return error_response(http::status::not_found, "no post '" + post + "'");
  const AgentRecord* r = agents_.find(*p, agent);
  if (!r || !r->has_presence)
    return error_response(http::status::not_found,
                          "no agent '" + agent + "' at post '" + post + "' (it never sent a birth to this aggregator)");
  try {
    const auto& sent = commands_->send(post, agent, std::move(c), ttl_s * 1000,
                                       who ? who->name : std::string("anonymous"), now_utc_ms(), publish_retained_);
    return json_response(http::status::created, sent.to_json());
  } catch (const std::invalid_argument& e) {
    return error_response(http::status::bad_request, e.what());
  }
}

}  // namespace postwatch::aggregator
