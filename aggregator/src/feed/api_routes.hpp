// The operations-centre API (/api/v1/...), the dashboard's files, /metrics and the
// health checks, rendered from the aggregator's state. API responses are JSON (CSV
// on request for posts and history); errors carry {"error": {"status", "message"}}.
// docs/operations.md lists every endpoint; src/feed/openapi.json describes them.
//
// ApiRoutes is the router: it authorises a request and hands it to its resource
// (feed/*_routes.hpp), each of which takes only its part of FeedSources (feed/feed_sources.hpp).
#pragma once

#include "feed/agent_routes.hpp"
#include "feed/aggregator_key_routes.hpp"
#include "feed/alarm_routes.hpp"
#include "feed/board_routes.hpp"
#include "feed/command_routes.hpp"
#include "feed/feed_sources.hpp"
#include "feed/http_helpers.hpp"
#include "feed/http_types.hpp"
#include "feed/post_routes.hpp"
#include "feed/progress_routes.hpp"
#include "feed/rollout_routes.hpp"
#include "feed/silence_routes.hpp"
#include "feed/stats_routes.hpp"
#include "feed/trust_routes.hpp"

#include <functional>
#include <optional>
#include <string_view>

namespace postwatch::aggregator {

class ApiRoutes {
 public:
  explicit ApiRoutes(const FeedSources& sources);
  HttpResponse handle(const HttpRequest& req);
  // The requests answered later (GET /api/v1/report): true when taken (feed/progress_routes.cpp).
  bool handle_deferred(const HttpRequest& req, const HttpReply& reply);
  // For a WebSocket upgrade request: nullopt accepts it (/api/v1/stream, authorised,
  // same origin, room for another client); otherwise the refusal to send.
  std::optional<HttpResponse> check_upgrade(const HttpRequest& req);

  using Query = HttpQuery;

 private:
  HttpResponse route_api(const HttpRequest& req, std::string_view target, const Query& q);
  // Null when the request may go on (who = the caller, null when the API is open).
  std::optional<HttpResponse> authorize(const HttpRequest& req, const Query& q, bool allow_query_token,
                                        bool need_operator, const Principal*& who) const;
  HttpResponse whoami(const Principal* who) const;

  const AccessControl* access_;
  const LiveStream* stream_;
  std::function<bool()> ready_;
  std::function<nlohmann::json()> cluster_;
  BoardRoutes board_;
  PostRoutes posts_;
  AlarmRoutes alarms_;
  AgentRoutes agents_;
  StatsRoutes stats_;
  ProgressRoutes progress_;
  SilenceRoutes silences_;
  RolloutRoutes rollouts_;
  CommandRoutes commands_;
  TrustRoutes trust_;
  AggregatorKeyRoutes aggregator_key_;
};

}  // namespace postwatch::aggregator
