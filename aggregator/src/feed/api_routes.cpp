#include "feed/api_routes.hpp"

#include "feed/assets.hpp"
#include "feed/live_stream.hpp"

#include <nlohmann/json.hpp>

namespace postwatch::aggregator {
using nlohmann::json;

namespace {

constexpr std::string_view kApiPrefix = "/api/v1/";

HttpResponse asset_response(const HttpRequest& req, const EmbeddedAsset& a) {
  HttpResponse res{http::status::ok, 11};
  res.set(http::field::content_type, bsv(a.content_type));
  res.set(http::field::etag, bsv(a.etag));
  res.set(http::field::cache_control, "no-cache");  // revalidate: a new build serves new files at once
  res.set("X-Content-Type-Options", "nosniff");
  res.set("Referrer-Policy", "no-referrer");  // the dashboard's address may carry ?token=
  if (a.content_type.starts_with("text/html"))
    res.set("Content-Security-Policy",
            "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'; "
            "script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'");
  auto inm = req.find(http::field::if_none_match);
  if (inm != req.end() && std::string_view(inm->value().data(), inm->value().size()) == a.etag) {
    res.result(http::status::not_modified);
    return res;
  }
  res.body() = std::string(a.body);
  return res;
}

}  // namespace

ApiRoutes::ApiRoutes(const FeedSources& s)
    : access_(s.extras.access),
      stream_(s.delivery.stream),
      ready_(s.delivery.ready),
      cluster_(s.extras.cluster),
      board_(s.board),
      posts_(s.board),
      alarms_(s.board.board, s.board.mark_alarm, s.desks.alarm_changed),
      agents_(s.board.catalogue, s.board.agents, s.delivery.presence, s.desks.trust),
      stats_(s.board, s.delivery, s.desks),
      progress_(s.board, s.extras.report),
      silences_(s.board.catalogue, s.desks.silences, s.desks.silence_changed),
      rollouts_(s.board.catalogue, s.board.agents, s.desks.rollouts),
      commands_(s.board.catalogue, s.board.agents, s.desks.commands, s.desks.publish_retained),
      trust_(s.board.catalogue, s.desks.trust),
      aggregator_key_(s.board.catalogue, s.board.agents, s.desks.trust, s.extras.cluster) {}

std::optional<HttpResponse> ApiRoutes::authorize(const HttpRequest& req, const Query& q, bool allow_query_token,
                                                 bool need_operator, const Principal*& who) const {
  who = nullptr;
  if (!access_ || access_->open()) return std::nullopt;
  std::optional<std::string_view> token = bearer_token(req);
  if (!token && allow_query_token) {
    if (auto it = q.find("token"); it != q.end() && !it->second.empty()) token = it->second;
  }
  if (!token) {
    auto res = error_response(http::status::unauthorized,
                              allow_query_token ? "a token is needed: Authorization: Bearer <token> or ?token=<token>"
                                                : "a token is needed: Authorization: Bearer <token>");
    res.set(http::field::www_authenticate, R"(Bearer realm="postwatch")");
    return res;
  }
  who = access_->find(*token);
  if (!who) {
    auto res = error_response(http::status::unauthorized, "unknown token");
    res.set(http::field::www_authenticate, R"(Bearer realm="postwatch", error="invalid_token")");
    return res;
  }
  if (need_operator && who->role != Role::Operator)
    return error_response(http::status::forbidden,
                          "token '" + who->name + "' has role read; this needs an operator token");
  return std::nullopt;
}

std::optional<HttpResponse> ApiRoutes::check_upgrade(const HttpRequest& req) {
  auto [target, query] = split_target(req);
  if (target != "/api/v1/stream")
    return error_response(http::status::not_found,
                          "no WebSocket endpoint at " + std::string(target) + " (the live stream is /api/v1/stream)");
  // A browser says where the page came from: only the dashboard's own origin may connect,
  // so another site open in the same browser cannot read the stream.
  if (auto origin = req.find(http::field::origin); origin != req.end()) {
    std::string_view o(origin->value().data(), origin->value().size());
    if (auto s = o.find("://"); s != std::string_view::npos) o.remove_prefix(s + 3);
    auto host = req.find(http::field::host);
    if (host == req.end() || o != std::string_view(host->value().data(), host->value().size()))
      return error_response(http::status::forbidden, "WebSocket from another origin refused");
  }
  const Principal* who = nullptr;
  if (auto refusal = authorize(req, parse_query(query), true, false, who)) return refusal;
  if (stream_ && stream_->full())
    return error_response(http::status::service_unavailable, "too many stream clients; try again later");
  return std::nullopt;
}

HttpResponse ApiRoutes::handle(const HttpRequest& req) {
  auto [target, query] = split_target(req);
  const auto q = parse_query(query);
  const bool get = req.method() == http::verb::get || req.method() == http::verb::head;

  if (starts_with(target, kApiPrefix)) return route_api(req, target, q);

  // Open: health checks, metrics and the dashboard's files (they hold no data).
  if (target == "/healthz" || target == "/readyz" || target == "/metrics") {
    if (!get) return method_not_allowed(req, target, "GET, HEAD");
    if (target == "/metrics") return stats_.metrics();
    if (target == "/healthz") return json_response(http::status::ok, {{"status", "ok"}});
    bool ready = ready_ && ready_();
    return json_response(ready ? http::status::ok : http::status::service_unavailable,
                         {{"status", ready ? "ready" : "not ready"}, {"mqtt_subscribed", ready}});
  }
  std::string_view asset_path = target;
  if (target == "/dashboard" || target == "/dashboard/" || target == "/index.html") asset_path = "/";
  if (const EmbeddedAsset* a = find_embedded_asset(asset_path); a && !starts_with(a->path, kApiPrefix)) {
    if (!get) return method_not_allowed(req, target, "GET, HEAD");
    return asset_response(req, *a);
  }
  return error_response(http::status::not_found,
                        "no such endpoint: " + std::string(target) +
                            " (the dashboard is at /, the API under /api/v1/, its description at "
                            "/api/v1/openapi.json)");
}

HttpResponse ApiRoutes::route_api(const HttpRequest& req, std::string_view target, const Query& q) {
  const bool get = req.method() == http::verb::get || req.method() == http::verb::head;
  const bool is_post = req.method() == http::verb::post;
  constexpr std::string_view alarms_prefix = "/api/v1/alarms/";
  const bool ack_path = starts_with(target, alarms_prefix) && target.ends_with("/ack");
  constexpr std::string_view silences_prefix = "/api/v1/silences/";
  const bool silences_path = target == "/api/v1/silences", silence_path = starts_with(target, silences_prefix);
  const bool is_delete = req.method() == http::verb::delete_;
  const bool tokens_path = target == "/api/v1/enrolment-tokens";
  constexpr std::string_view keys_prefix = "/api/v1/agent-keys/";
  const bool revoke_path = starts_with(target, keys_prefix) && target.ends_with("/revoke");
  const bool next_key_path = target == "/api/v1/aggregator-key/next",
             switch_key_path = target == "/api/v1/aggregator-key/switch";
  constexpr std::string_view rollouts_prefix = "/api/v1/rollouts/";
  const bool rollouts_path = target == "/api/v1/rollouts", rollout_path = starts_with(target, rollouts_prefix);
  constexpr std::string_view commands_prefix = "/api/v1/commands/";
  const bool commands_path = target == "/api/v1/commands", command_path = starts_with(target, commands_prefix);
  const bool changes = (ack_path && is_post) || (silences_path && is_post) || (silence_path && is_delete) ||
                       (tokens_path && is_post) || (revoke_path && is_post) ||
                       ((next_key_path || switch_key_path) && is_post) ||
                       ((rollouts_path || rollout_path) && is_post) || (commands_path && is_post);

  const Principal* who = nullptr;
  if (auto refusal = authorize(req, q, false, changes, who)) return *refusal;

  if (ack_path) {
    if (!is_post) return method_not_allowed(req, target, "POST");
    return alarms_.acknowledge(req, target.substr(alarms_prefix.size(), target.size() - alarms_prefix.size() - 4), who);
  }
  if (silences_path && is_post) return silences_.create_silence(req, who);
  if (silence_path) {
    if (!is_delete) return method_not_allowed(req, target, "DELETE");
    return silences_.end_silence(target.substr(silences_prefix.size()), who);
  }
  if (silences_path && !get) return method_not_allowed(req, target, "GET, HEAD, POST");
  if (tokens_path) {
    if (!is_post) return method_not_allowed(req, target, "POST");
    return trust_.issue_token(req, who);  // feed/trust_routes.cpp
  }
  if (revoke_path) {
    if (!is_post) return method_not_allowed(req, target, "POST");
    return trust_.revoke_key(target.substr(keys_prefix.size(), target.size() - keys_prefix.size() - 7), who);
  }
  if (next_key_path || switch_key_path) {  // feed/aggregator_key_routes.cpp
    if (!is_post) return method_not_allowed(req, target, "POST");
    return next_key_path ? aggregator_key_.prepare_aggregator_key(who) : aggregator_key_.switch_aggregator_key(q, who);
  }
  if (rollouts_path || rollout_path) {  // feed/rollout_routes.cpp
    if (rollouts_path) {
      if (is_post) return rollouts_.create_rollout(req, who);
      if (!get) return method_not_allowed(req, target, "GET, HEAD, POST");
      return rollouts_.rollouts();
    }
    auto rest = target.substr(rollouts_prefix.size());
    const auto slash = rest.find('/');
    if (slash == std::string_view::npos) {
      if (!get) return method_not_allowed(req, target, "GET, HEAD");
      return rollouts_.rollout(rest);
    }
    if (!is_post) return method_not_allowed(req, target, "POST");
    return rollouts_.change_rollout(rest.substr(0, slash), rest.substr(slash + 1), who);
  }
  if (commands_path) {  // feed/command_routes.cpp
    if (is_post) return commands_.send_command(req, who);
    if (!get) return method_not_allowed(req, target, "GET, HEAD, POST");
    return commands_.commands();
  }
  if (command_path) {
    if (!get) return method_not_allowed(req, target, "GET, HEAD");
    return commands_.command(target.substr(commands_prefix.size()));
  }
  if (!get) return method_not_allowed(req, target, "GET, HEAD");

  if (target == "/api/v1/goals" || target == "/api/v1/pillars") return board_.goals();
  if (starts_with(target, "/api/v1/goals/") && target.ends_with("/progress"))
    return progress_.goal_progress(target.substr(14, target.size() - 14 - 9), q);
  if (starts_with(target, "/api/v1/goals/")) return board_.goal(target.substr(14));
  if (target == "/api/v1/targets") return progress_.targets(q);
  if (target == "/api/v1/threats") return board_.threats();
  if (target == "/api/v1/regions") return posts_.regions(q);
  if (target == "/api/v1/posts") return posts_.posts(q);
  if (starts_with(target, "/api/v1/posts/") && target.ends_with("/events"))
    return posts_.post_events(target.substr(14, target.size() - 14 - 7), q);
  if (starts_with(target, "/api/v1/posts/")) return posts_.post(target.substr(14));
  if (target == "/api/v1/agents") return agents_.agents();
  if (starts_with(target, "/api/v1/agents/")) return agents_.agent(target.substr(15));
  if (target == "/api/v1/stats") return stats_.stats();
  if (target == "/api/v1/agent-keys") return trust_.agent_keys();
  if (target == "/api/v1/aggregator-key") return aggregator_key_.aggregator_key();
  if (target == "/api/v1/cluster")
    return json_response(http::status::ok, cluster_ ? cluster_() : json{{"clustered", false}});
  if (target == "/api/v1/alarms") return alarms_.alarms(q);
  if (target == "/api/v1/history") return board_.history(q);
  if (silences_path) return silences_.silences(q);
  if (target == "/api/v1/whoami") return whoami(who);
  if (target == "/api/v1/stream")
    return error_response(http::status::upgrade_required,
                          "/api/v1/stream is a WebSocket: connect with ws:// (Upgrade: websocket)");
  if (const EmbeddedAsset* a = find_embedded_asset(target)) return asset_response(req, *a);  // openapi.json
  return error_response(
      http::status::not_found,
      "no such endpoint: " + std::string(target) +
          " (try /api/v1/goals, /api/v1/goals/{id}, /api/v1/goals/{id}/progress, /api/v1/targets, /api/v1/report, "
          "/api/v1/threats, /api/v1/regions, "
          "/api/v1/posts, /api/v1/posts/{id}, /api/v1/posts/{id}/events, /api/v1/agents, "
          "/api/v1/agents/{post}/{agent}, "
          "/api/v1/alarms, /api/v1/silences, /api/v1/history, /api/v1/agent-keys, /api/v1/enrolment-tokens, "
          "/api/v1/aggregator-key, /api/v1/rollouts, /api/v1/commands, /api/v1/stats, /api/v1/cluster, /api/v1/whoami, "
          "/api/v1/openapi.json)");
}

HttpResponse ApiRoutes::whoami(const Principal* who) const {
  if (!who) return json_response(http::status::ok, {{"auth", "none"}, {"name", nullptr}, {"role", "operator"}});
  return json_response(http::status::ok, {{"auth", "token"}, {"name", who->name}, {"role", to_string(who->role)}});
}

bool ApiRoutes::handle_deferred(const HttpRequest& req, const HttpReply& reply) {
  auto [target, query] = split_target(req);
  if (target != "/api/v1/report") return false;
  const auto q = parse_query(query);
  const Principal* who = nullptr;
  if (auto refusal = authorize(req, q, false, false, who))
    reply(std::move(*refusal));
  else
    progress_.report(req, target, q, reply);
  return true;
}

}  // namespace postwatch::aggregator
