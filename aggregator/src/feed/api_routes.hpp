// The operations-centre API (/api/v1/...), the dashboard's files, /metrics and the
// health checks, rendered from the aggregator's state. API responses are JSON (CSV
// on request for posts and history); errors carry {"error": {"status", "message"}}.
// docs/operations.md lists every endpoint; src/feed/openapi.json describes them.
#pragma once

#include "alerting/notification_outbox.hpp"
#include "feed/access.hpp"
#include "feed/figure_registry.hpp"
#include "feed/http_helpers.hpp"
#include "feed/http_types.hpp"
#include "feed/metrics.hpp"
#include "ingest/agent_presence.hpp"
#include "ingest/batch_ingest.hpp"
#include "ingest/delivery_confirmer.hpp"
#include "ingest/delivery_gate.hpp"
#include "outbound/outbound_queue.hpp"
#include "postwatch/catalogue.hpp"
#include "progress/strategy_progress.hpp"
#include "rollup/indicator_state.hpp"
#include "rollup/status_board.hpp"

#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace postwatch::aggregator {

class EventStore;
class LiveStream;
class SilenceBook;
struct Silence;
class AgentTrust;
class RolloutDesk;
class CommandDesk;

// What the API reads; all of it lives on the io_context thread.
struct FeedSources {
  const IndicatorCatalogue& catalogue;
  const IndicatorState& state;
  const BatchIngest& ingest;
  const AgentPresence& presence;
  const AgentTable& agents;  // one record per agent: presence, events, confirmations
  StatusBoard& board;        // acknowledging an alarm changes it
  EventStore* store;         // history queries; may be null
  std::function<bool()> ready;
  std::function<void(const Alarm&)> alarm_changed;
  const std::vector<bool>* silent = nullptr;            // per catalogue post, as of the last tick; may be null
  const AccessControl* access = nullptr;                // null or open(): no tokens needed
  const LatencyHistogram* latency = nullptr;            // may be null
  const LiveStream* stream = nullptr;                   // may be null
  std::function<IngestFlowStats()> flow;                // MQTT back-pressure; may be empty
  std::function<nlohmann::json()> cluster;              // /api/v1/cluster; may be empty
  const ConfirmCounters* confirm = nullptr;             // delivery confirmation; null when switched off
  const OutboundQueue* outbound = nullptr;              // what the aggregator publishes; may be null
  std::function<NotificationFigures()> notifications;   // --notifications; empty without it
  SilenceBook* silences = nullptr;                      // may be null (then /api/v1/silences answers 503)
  std::function<void(const Silence&)> silence_changed;  // created or ended through the API
  // Adds to an alarm's JSON what the stages after the board know of it: silenced_by (the
  // silence holding its notifications) and flapping.
  std::function<void(const Alarm&, nlohmann::json&)> mark_alarm;
  const std::vector<std::uint64_t>* maintenance = nullptr;  // per post: the maintenance window covering it, or 0
  const TargetCatalogue* targets = nullptr;                 // the strategy's targets; null: none
  // The progress report for [from_ms, to_ms), HTML or CSV, answered through `reply` off the
  // io_context thread; empty: no report (503).
  std::function<void(std::int64_t from_ms, std::int64_t to_ms, bool csv, const HttpReply& reply)> report;
  AgentTrust* trust = nullptr;      // agent keys and enrolment; null: none (then 503)
  RolloutDesk* rollouts = nullptr;  // fleet rollouts; null: none (then 503)
  CommandDesk* commands = nullptr;  // remote commands; null: none (then 503)
  // Publishes retained on the broker (an agent's pending commands).
  std::function<void(const std::string& topic, const std::string& payload)> publish_retained;
};

class ApiRoutes {
 public:
  explicit ApiRoutes(FeedSources sources);
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

  HttpResponse goals();
  HttpResponse goal(std::string_view id);
  HttpResponse threats();
  HttpResponse regions(const Query& q);
  HttpResponse posts(const Query& q);
  HttpResponse post(std::string_view id);
  HttpResponse post_events(std::string_view id, const Query& q);  // feed/post_events.cpp
  HttpResponse agents();
  HttpResponse agent(std::string_view key);
  HttpResponse stats();
  HttpResponse metrics();
  HttpResponse alarms(const Query& q);
  HttpResponse acknowledge(const HttpRequest& req, std::string_view id, const Principal* who);
  HttpResponse history(const Query& q);
  HttpResponse silences(const Query& q);  // feed/silence_routes.cpp
  HttpResponse create_silence(const HttpRequest& req, const Principal* who);
  HttpResponse end_silence(std::string_view id, const Principal* who);
  HttpResponse rollouts() const;  // feed/rollout_routes.cpp
  HttpResponse rollout(std::string_view id) const;
  HttpResponse create_rollout(const HttpRequest& req, const Principal* who);
  HttpResponse change_rollout(std::string_view id, std::string_view action, const Principal* who);
  HttpResponse commands() const;  // feed/command_routes.cpp
  HttpResponse command(std::string_view id) const;
  HttpResponse send_command(const HttpRequest& req, const Principal* who);
  HttpResponse whoami(const Principal* who) const;
  HttpResponse agent_keys();  // feed/trust_routes.cpp
  HttpResponse issue_token(const HttpRequest& req, const Principal* who);
  HttpResponse revoke_key(std::string_view post_agent, const Principal* who);
  HttpResponse aggregator_key();  // feed/aggregator_key_routes.cpp
  HttpResponse prepare_aggregator_key(const Principal* who);
  HttpResponse switch_aggregator_key(const Query& q, const Principal* who);
  nlohmann::json aggregator_key_json() const;
  bool clustered() const;  // an instance of a JetStream cluster
  // "key_id" and "enrolled_at" of the agent's key in force (null when it has none).
  void add_agent_key(nlohmann::json& agent_json, const std::string& post, const std::string& agent) const;
  HttpResponse targets(const Query& q);  // feed/progress_routes.cpp
  HttpResponse goal_progress(std::string_view id, const Query& q);
  // Every target over the period the query asks for; the refusal when it asks for a bad one.
  std::optional<HttpResponse> assess_progress(const Query& q, StrategyProgress& out) const;

  // Which indicators feed goal `id` (numeric ones), for ?goal= filters.
  std::vector<bool> goal_mask(int goal) const;
  bool is_silent(std::uint32_t post) const;
  // Adds "maintenance": <silence id> to a post's JSON when a maintenance window covers it.
  void add_maintenance(nlohmann::json& post_json, std::uint32_t post) const;
  // Events of the post's agents that never arrived and were given up (the agents' seq gaps:
  // dropped by a full spool, or lost in a broker that forgot what it acknowledged).
  std::uint64_t events_lost(std::uint32_t post) const;

  FeedSources src_;
  FigureRegistry figures_;  // /api/v1/stats and /metrics
};

// The agent's clock as the API shows it: sync status, offset, correction, jumps.
nlohmann::json agent_clock_json(const AgentRecord& r);

// Percent-decodes a query string into key -> value (the last of repeated keys wins).
ApiRoutes::Query parse_query(std::string_view query);

}  // namespace postwatch::aggregator
