// Routing (docs/alerting.md): which channels hear of an alarm change, what the change was
// (raised, escalated, deescalated, acknowledged, cleared, or a reminder while it stays open),
// and which notifications the changes go into. Pure and single-threaded: the aggregator calls
// it on its io thread and hands what it returns to the NotificationOutbox.
#pragma once

#include "alerting/alarm_notice.hpp"
#include "alerting/notification_config.hpp"

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace postwatch::aggregator {

// One alarm change for one channel. Entries with the same group_key that arrive within
// group_wait_ms of the first go out as one notification.
struct NotificationEntry {
  std::string channel;
  std::string group_key;  // channel and route
  std::int64_t group_wait_ms = 0;
  nlohmann::json body;  // alarm_json plus "event"
};

bool route_matches(const AlarmMatcher& m, const AlarmNotice& a);

class NotificationRouter {
 public:
  explicit NotificationRouter(NotificationConfig config) : config_(std::move(config)) {}

  // An alarm changed (on the board, or by an acknowledgement). With `notify` false (a cluster
  // instance that does not lead) it only remembers the alarm, so a later leader knows what
  // was already said.
  std::vector<NotificationEntry> on_alarm(const AlarmNotice& a, std::int64_t now_ms, bool notify = true);
  // Alarms the store restored at start: known, not news; reminders count from now.
  void remember(const AlarmNotice& a, std::int64_t now_ms);
  // Reminders for open, unacknowledged alarms whose route repeats and whose last word is older
  // than its repeat_interval.
  std::vector<NotificationEntry> due_reminders(std::int64_t now_ms, bool notify = true);

  const NotificationConfig& config() const { return config_; }

 private:
  struct Known {
    AlarmNotice last;
    std::map<std::string, std::int64_t> said_at_ms;  // per channel
  };
  // (route index, channel) for every channel the alarm goes to; the first matching route
  // decides a channel's grouping and reminders.
  std::vector<std::pair<std::size_t, std::string>> targets(const AlarmNotice& a) const;
  NotificationEntry entry(std::size_t route, const std::string& channel, const AlarmNotice& a, const char* event) const;

  NotificationConfig config_;
  std::map<std::uint64_t, Known> known_;  // alarms seen open, by id
};

}  // namespace postwatch::aggregator
