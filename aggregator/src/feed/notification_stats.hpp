// The notification outbox's figures (alerting/), for /api/v1/stats and /metrics.
#pragma once

#include "alerting/notification_outbox.hpp"
#include "feed/metrics.hpp"

#include <nlohmann/json.hpp>

namespace postwatch::aggregator {

// notifications_delivered, notifications_failed_attempts, notifications_pending,
// notifications_oldest_pending_age_s.
void add_notification_stats(nlohmann::json& stats, const NotificationFigures& f);
void add_notification_metrics(MetricsText& m, const NotificationFigures& f);

}  // namespace postwatch::aggregator
