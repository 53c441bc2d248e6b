// The outbound path's figures (MqttOutbox), for /api/v1/stats and /metrics.
#pragma once

#include "feed/metrics.hpp"
#include "outbound/outbound_queue.hpp"

#include <nlohmann/json.hpp>

namespace postwatch::aggregator {

// outbound_waiting, outbound_in_flight, outbound_window, outbound_published.<priority>,
// outbound_coalesced, outbound_retried, outbound_dropped.<reason>.
void add_outbound_stats(nlohmann::json& stats, const OutboundQueue& q);
void add_outbound_metrics(MetricsText& m, const OutboundQueue& q);

}  // namespace postwatch::aggregator
