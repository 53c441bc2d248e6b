// The outbound path's figures (MqttOutbox): its rows of the figure table (feed/figures.hpp).
#include "feed/figures.hpp"

namespace postwatch::aggregator {

namespace {
constexpr OutboundPriority kPriorities[] = {OutboundPriority::Urgent, OutboundPriority::Confirm,
                                            OutboundPriority::Snapshot};
constexpr OutboundDrop kDrops[] = {OutboundDrop::Overflow, OutboundDrop::Shutdown};
}  // namespace

void add_outbound_figures(FigureRegistry& r, const OutboundQueue& q) {
  using L = MetricsText;
  auto published =
      r.family("postwatch_outbound_published_total", MetricKind::Counter,
               "Messages the aggregator published and the broker acknowledged, by priority (urgent: alarms, resend "
               "requests, cluster membership; confirm: delivery confirmations; snapshot: goal, pillar and cluster "
               "state).");
  for (auto p : kPriorities)
    published.figure("outbound_published/" + std::string(to_string(p)), L::label("priority", to_string(p)),
                     [&q, p] { return FigureValue(q.counters().published[static_cast<std::size_t>(p)]); });
  auto waiting = r.family("postwatch_outbound_waiting", MetricKind::Gauge,
                          "Messages waiting for room in the outbound window, by priority.");
  for (auto p : kPriorities)
    waiting.figure("outbound_waiting/" + std::string(to_string(p)), L::label("priority", to_string(p)),
                   [&q, p] { return FigureValue(q.waiting(p)); });
  r.family("postwatch_outbound_in_flight", MetricKind::Gauge,
           "Messages handed to the MQTT client, not yet acknowledged.")
      .figure("outbound_in_flight", "", [&q] { return FigureValue(q.in_flight()); });
  r.stats_only("outbound_window", [&q] { return FigureValue(q.limits().window); });
  r.family("postwatch_outbound_coalesced_total", MetricKind::Counter,
           "Retained values (confirmations, snapshots) replaced by a newer value of the same topic before they went "
           "out.")
      .figure("outbound_coalesced", "", [&q] { return FigureValue(q.counters().coalesced); });
  r.family("postwatch_outbound_retried_total", MetricKind::Counter,
           "Messages that failed (connection lost, unacknowledged too long) and were queued again.")
      .figure("outbound_retried", "", [&q] { return FigureValue(q.counters().retried); });
  auto dropped = r.family("postwatch_outbound_dropped_total", MetricKind::Counter,
                          "Messages never sent, by reason (overflow: too many alarms and resend requests waiting; "
                          "shutdown: still waiting when the aggregator stopped).");
  for (auto d : kDrops)
    dropped.figure("outbound_dropped/" + std::string(to_string(d)), L::label("reason", to_string(d)),
                   [&q, d] { return FigureValue(q.counters().dropped[static_cast<std::size_t>(d)]); });
}

}  // namespace postwatch::aggregator
