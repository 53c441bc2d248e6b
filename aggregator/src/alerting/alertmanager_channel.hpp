// The Alertmanager channel (docs/alerting.md, "Alertmanager"): a notification's alarm changes
// as Alertmanager alerts (its API's postableAlerts), POSTed to <url>/api/v2/alerts, so a
// ministry that runs Prometheus routes Postwatch alarms with everything else. Alertmanager
// resolves an alert nobody re-sends within its resolve_timeout; the router re-sends open
// alarms (NotificationRouter, "resend"). Blocking, like the webhook: only the outbox's worker
// calls deliver().
#pragma once

#include "alerting/delivery_result.hpp"
#include "alerting/notification_config.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

namespace postwatch::aggregator {

// The alerts for `alarms` (a notification's "alarms": alarm changes with "event" and "facts").
// Labels stay the same for an alarm's life, so Alertmanager sees one alert per alarm and
// severity: alertname (postwatch_<kind>), severity (its level), alarm_id, goal and pillar (goal
// alarms), post and region (post alarms). An escalation or de-escalation also ends the alert
// of the level it left (endsAt now); a cleared alarm ends at its clearance. Of several changes
// of one alert in the list, the last is kept.
nlohmann::json alertmanager_alerts(const nlohmann::json& alarms, const std::string& dashboard_url, std::int64_t now_ms);

class AlertmanagerChannel {
 public:
  AlertmanagerChannel(AlertmanagerChannelConfig config, std::string dashboard_url);
  // `body` is the outbox's notification ({"notification_id", ..., "alarms": [...]}).
  DeliveryResult deliver(const std::string& body, std::int64_t now_ms) const;

 private:
  AlertmanagerChannelConfig config_;
  std::string dashboard_url_;
  std::string endpoint_;  // <url>/api/v2/alerts
};

}  // namespace postwatch::aggregator
