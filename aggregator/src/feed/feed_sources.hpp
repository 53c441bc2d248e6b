// What the API reads and changes, grouped by what it serves, so each resource takes only its
// part (feed/*_routes.hpp). All of it lives on the io_context thread; a null pointer or an
// empty function is something this aggregator does not have (its endpoints answer 503).
#pragma once

#include "alerting/notification_outbox.hpp"
#include "feed/access.hpp"
#include "feed/http_types.hpp"
#include "feed/metrics.hpp"
#include "ingest/agent_presence.hpp"
#include "ingest/agent_table.hpp"
#include "ingest/batch_ingest.hpp"
#include "ingest/delivery_confirmer.hpp"
#include "ingest/delivery_gate.hpp"
#include "outbound/outbound_queue.hpp"
#include "postwatch/catalogue.hpp"
#include "progress/strategy_progress.hpp"
#include "rollup/indicator_state.hpp"
#include "rollup/status_board.hpp"

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <functional>
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

// The board and the state: goals, pillars, threats, regions, posts, alarms, history, progress.
struct BoardReads {
  const IndicatorCatalogue& catalogue;
  const IndicatorState& state;
  StatusBoard& board;                                       // acknowledging an alarm changes it
  const AgentTable& agents;                                 // one record per agent: presence, events, confirmations
  EventStore* store = nullptr;                              // history queries
  const std::vector<bool>* silent = nullptr;                // per catalogue post, as of the last tick
  const std::vector<std::uint64_t>* maintenance = nullptr;  // per post: the maintenance window covering it, or 0
  const TargetCatalogue* targets = nullptr;                 // the strategy's targets; null: none
  // Adds to an alarm's JSON what the stages after the board know of it: silenced_by (the
  // silence holding its notifications) and flapping.
  std::function<void(const Alarm&, nlohmann::json&)> mark_alarm;
};

// What ingest and delivery count: the agents' figures, /api/v1/stats, /metrics, /readyz.
struct DeliveryFigures {
  const BatchIngest& ingest;
  const AgentPresence& presence;
  std::function<bool()> ready;  // subscribed to the broker (and the cluster ready)
  const LatencyHistogram* latency = nullptr;
  const LiveStream* stream = nullptr;
  std::function<IngestFlowStats()> flow;               // MQTT back-pressure
  const ConfirmCounters* confirm = nullptr;            // delivery confirmation; null when switched off
  const OutboundQueue* outbound = nullptr;             // what the aggregator publishes
  std::function<NotificationFigures()> notifications;  // --notifications
};

// What an operator changes through the API (an operator token when tokens are on).
struct OperatorDesks {
  std::function<void(const Alarm&)> alarm_changed;  // acknowledged
  SilenceBook* silences = nullptr;
  std::function<void(const Silence&)> silence_changed;  // created or ended
  AgentTrust* trust = nullptr;                          // agent keys and enrolment
  RolloutDesk* rollouts = nullptr;                      // fleet rollouts
  CommandDesk* commands = nullptr;                      // remote commands
  // Publishes retained on the broker (an agent's pending commands).
  std::function<void(const std::string& topic, const std::string& payload)> publish_retained;
};

// What only some aggregators have.
struct FeedExtras {
  const AccessControl* access = nullptr;    // null or open(): no tokens needed
  std::function<nlohmann::json()> cluster;  // /api/v1/cluster; empty: not clustered
  // The progress report for [from_ms, to_ms), HTML or CSV, answered through `reply` off the
  // io_context thread; empty: no report (503).
  std::function<void(std::int64_t from_ms, std::int64_t to_ms, bool csv, const HttpReply& reply)> report;
};

struct FeedSources {
  BoardReads board;
  DeliveryFigures delivery;
  OperatorDesks desks;
  FeedExtras extras;
};

}  // namespace postwatch::aggregator
