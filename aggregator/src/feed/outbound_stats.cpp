#include "feed/outbound_stats.hpp"

namespace postwatch::aggregator {

namespace {
constexpr OutboundPriority kPriorities[] = {OutboundPriority::Urgent, OutboundPriority::Confirm,
                                            OutboundPriority::Snapshot};
constexpr OutboundDrop kDrops[] = {OutboundDrop::Overflow, OutboundDrop::Shutdown};
}  // namespace

void add_outbound_stats(nlohmann::json& stats, const OutboundQueue& q) {
  const auto& c = q.counters();
  nlohmann::json published = nlohmann::json::object(), waiting = nlohmann::json::object(),
                 dropped = nlohmann::json::object();
  for (auto p : kPriorities) {
    published[std::string(to_string(p))] = c.published[static_cast<std::size_t>(p)];
    waiting[std::string(to_string(p))] = q.waiting(p);
  }
  for (auto d : kDrops) dropped[std::string(to_string(d))] = c.dropped[static_cast<std::size_t>(d)];
  stats["outbound_waiting"] = waiting;
  stats["outbound_in_flight"] = q.in_flight();
  stats["outbound_window"] = q.limits().window;
  stats["outbound_published"] = published;
  stats["outbound_coalesced"] = c.coalesced;
  stats["outbound_retried"] = c.retried;
  stats["outbound_dropped"] = dropped;
}

void add_outbound_metrics(MetricsText& m, const OutboundQueue& q) {
  using L = MetricsText;
  const auto& c = q.counters();
  m.family("postwatch_outbound_published_total", "counter",
           "Messages the aggregator published and the broker acknowledged, by priority (urgent: alarms, resend "
           "requests, cluster membership; confirm: delivery confirmations; snapshot: goal, pillar and cluster state).");
  for (auto p : kPriorities)
    m.sample("postwatch_outbound_published_total", L::label("priority", to_string(p)),
             c.published[static_cast<std::size_t>(p)]);
  m.family("postwatch_outbound_waiting", "gauge", "Messages waiting for room in the outbound window, by priority.");
  for (auto p : kPriorities)
    m.sample("postwatch_outbound_waiting", L::label("priority", to_string(p)),
             static_cast<std::uint64_t>(q.waiting(p)));
  m.family("postwatch_outbound_in_flight", "gauge", "Messages handed to the MQTT client, not yet acknowledged.");
  m.sample("postwatch_outbound_in_flight", "", static_cast<std::uint64_t>(q.in_flight()));
  m.family("postwatch_outbound_coalesced_total", "counter",
           "Retained values (confirmations, snapshots) replaced by a newer value of the same topic before they went "
           "out.");
  m.sample("postwatch_outbound_coalesced_total", "", c.coalesced);
  m.family("postwatch_outbound_retried_total", "counter",
           "Messages that failed (connection lost, unacknowledged too long) and were queued again.");
  m.sample("postwatch_outbound_retried_total", "", c.retried);
  m.family("postwatch_outbound_dropped_total", "counter",
           "Messages never sent, by reason (overflow: too many alarms and resend requests waiting; shutdown: still "
           "waiting when the aggregator stopped).");
  for (auto d : kDrops)
    m.sample("postwatch_outbound_dropped_total", L::label("reason", to_string(d)),
             c.dropped[static_cast<std::size_t>(d)]);
}

}  // namespace postwatch::aggregator
