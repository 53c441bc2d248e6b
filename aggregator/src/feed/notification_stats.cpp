#include "feed/notification_stats.hpp"

namespace postwatch::aggregator {

void add_notification_stats(nlohmann::json& stats, const NotificationFigures& f) {
  stats["notifications_delivered"] = f.delivered;
  stats["notifications_failed_attempts"] = f.failed_attempts;
  stats["notifications_pending"] = f.pending;
  stats["notifications_oldest_pending_age_s"] = f.oldest_pending_age_s;
}

void add_notification_metrics(MetricsText& m, const NotificationFigures& f) {
  m.family("postwatch_notifications_delivered_total", "counter",
           "Notifications (webhook POSTs) a channel accepted, since start.");
  m.sample("postwatch_notifications_delivered_total", "", f.delivered);
  m.family("postwatch_notification_attempts_failed_total", "counter",
           "Delivery attempts that failed (refused, timed out, not 2xx) and will be retried, since start.");
  m.sample("postwatch_notification_attempts_failed_total", "", f.failed_attempts);
  m.family("postwatch_notifications_pending", "gauge",
           "Notifications in the outbox: gathering alarms, due, or waiting for a retry.");
  m.sample("postwatch_notifications_pending", "", f.pending);
  m.family("postwatch_notifications_oldest_pending_age_seconds", "gauge",
           "Age of the oldest notification not yet delivered; 0 when none is pending.");
  m.sample("postwatch_notifications_oldest_pending_age_seconds", "", f.oldest_pending_age_s);
}

}  // namespace postwatch::aggregator
