// The notification outbox's figures (alerting/): its rows of the figure table (feed/figures.hpp).
#include "feed/figures.hpp"

namespace postwatch::aggregator {

void add_notification_figures(FigureRegistry& r, std::function<NotificationFigures()> figures) {
  auto field = [figures = std::move(figures)]<typename T>(T NotificationFigures::*f) {
    return [figures, f] { return FigureValue(figures().*f); };
  };
  r.family("postwatch_notifications_delivered_total", MetricKind::Counter,
           "Notifications (webhook POSTs) a channel accepted, since start.")
      .figure("notifications_delivered", "", field(&NotificationFigures::delivered));
  r.family("postwatch_notification_attempts_failed_total", MetricKind::Counter,
           "Delivery attempts that failed (refused, timed out, not 2xx) and will be retried, since start.")
      .figure("notifications_failed_attempts", "", field(&NotificationFigures::failed_attempts));
  r.family("postwatch_notifications_pending", MetricKind::Gauge,
           "Notifications in the outbox: gathering alarms, due, or waiting for a retry.")
      .figure("notifications_pending", "", field(&NotificationFigures::pending));
  r.family("postwatch_notifications_oldest_pending_age_seconds", MetricKind::Gauge,
           "Age of the oldest notification not yet delivered; 0 when none is pending.")
      .figure("notifications_oldest_pending_age_s", "", field(&NotificationFigures::oldest_pending_age_s));
}

}  // namespace postwatch::aggregator
