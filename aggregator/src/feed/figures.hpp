// The table of the aggregator's figures (feed/figure_registry.hpp), by where they come from.
// Each add_* adds its rows in the order /metrics lists their families; /api/v1/stats shows
// the rows that have a stats path.
#pragma once

#include "alerting/notification_outbox.hpp"
#include "feed/figure_registry.hpp"
#include "ingest/agent_presence.hpp"
#include "ingest/agent_table.hpp"
#include "ingest/batch_ingest.hpp"
#include "ingest/delivery_confirmer.hpp"
#include "ingest/delivery_gate.hpp"
#include "outbound/outbound_queue.hpp"
#include "postwatch/catalogue.hpp"
#include "rollup/status_board.hpp"

#include <functional>

namespace postwatch::aggregator {

class EventStore;
class LiveStream;
class AgentTrust;
class RolloutDesk;
class CommandDesk;

// feed/delivery_figures.cpp
void add_ingest_figures(FigureRegistry& r, const BatchIngest& ingest, const AgentPresence& presence,
                        const AgentTable& agents);
void add_store_figures(FigureRegistry& r, const EventStore& store);
// posts_silent: posts that reported and went quiet; ready: subscribed to the broker.
void add_presence_figures(FigureRegistry& r, const AgentPresence& presence, std::function<std::uint64_t()> posts_silent,
                          std::function<bool()> ready);
void add_stream_figures(FigureRegistry& r, const LiveStream* stream);  // null: stream_clients 0, no ws families
void add_flow_figures(FigureRegistry& r, std::function<IngestFlowStats()> flow);
void add_confirm_figures(FigureRegistry& r, const ConfirmCounters& c);
// feed/outbound_stats.cpp, feed/notification_stats.cpp
void add_outbound_figures(FigureRegistry& r, const OutboundQueue& q);
void add_notification_figures(FigureRegistry& r, std::function<NotificationFigures()> figures);
// feed/board_figures.cpp (/metrics only)
void add_status_figures(FigureRegistry& r, const IndicatorCatalogue& cat, const StatusBoard& board);
void add_alarm_figures(FigureRegistry& r, const StatusBoard& board);
// feed/trust_figures.cpp: signatures checked by ingest and presence; enrolment when `trust` is kept.
void add_trust_figures(FigureRegistry& r, const BatchIngest& ingest, const AgentPresence& presence,
                       const AgentTrust* trust);
// feed/fleet_figures.cpp (/metrics only): the agents' bundles; commands and rollouts when kept.
void add_fleet_figures(FigureRegistry& r, const AgentTable& agents, const CommandDesk* commands,
                       const RolloutDesk* rollouts);

}  // namespace postwatch::aggregator
