// The alerting stage as the aggregator sees it: alarm changes in, notifications out. Owns the
// router (on the io thread) and the outbox (its own worker thread and SQLite file).
#pragma once

#include "alerting/alarm_notice.hpp"
#include "alerting/notification_config.hpp"
#include "alerting/notification_outbox.hpp"
#include "alerting/notification_router.hpp"

#include <cstdint>
#include <filesystem>
#include <memory>

namespace spdlog {
class logger;
}

namespace postwatch::aggregator {

class AlarmNotifier {
 public:
  // The outbox lives in <data_dir>/notifications.sqlite. Throws std::runtime_error if it cannot
  // open. `mirror`: a cluster's (NotificationOutbox).
  AlarmNotifier(NotificationConfig config, const std::filesystem::path& data_dir, std::shared_ptr<spdlog::logger> log,
                std::shared_ptr<OutboxMirror> mirror = nullptr);

  // `notifies` false on a cluster instance that does not lead: it follows the alarms, so it
  // knows what was said if it takes over, and sends nothing.
  void on_alarm(const AlarmNotice& a, std::int64_t now_ms, bool notifies);
  // Reminders for alarms that stay open; call it every tick.
  void tick(std::int64_t now_ms, bool notifies);
  // An alarm restored from the store at start (it was notified by the run that raised it). If
  // that run already stored its clearance (the alarm store had not yet committed it when the
  // process died), it is remembered as told cleared, so the clearance is not told twice.
  void restored(const AlarmNotice& a, std::int64_t now_ms) {
    router_.remember(a, now_ms, outbox_->said_before_start(a.id) == "cleared");
  }
  NotificationFigures figures() const { return outbox_->figures(); }
  // Whether the alarm's subject flaps now (docs/alerting.md, "Flapping").
  bool flapping(const AlarmNotice& a) const { return router_.flapping(a); }

 private:
  void send(std::vector<NotificationEntry> entries);

  NotificationRouter router_;
  std::unique_ptr<NotificationOutbox> outbox_;
};

}  // namespace postwatch::aggregator
