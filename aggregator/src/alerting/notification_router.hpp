// Routing (docs/alerting.md): which channels hear of an alarm change, what the change was
// (raised, escalated, deescalated, acknowledged, cleared, a reminder while it stays open, or
// the next step of an escalation chain while nobody acknowledges it), and which notifications
// the changes go into. Pure and single-threaded: the aggregator calls
// it on its io thread and hands what it returns to the NotificationOutbox.
#pragma once

#include "alerting/alarm_notice.hpp"
#include "alerting/flap_detector.hpp"
#include "alerting/notification_config.hpp"

#include <cstdint>
#include <map>
#include <optional>
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
  // alarm_json plus "event" (and "facts" for the channels that write text); for an entry
  // that supersedes, a list of those.
  nlohmann::json body;
  // A re-send for Alertmanager: replaces what is still pending under its group_key.
  bool supersedes = false;
};

bool route_matches(const AlarmMatcher& m, const AlarmNotice& a);

class NotificationRouter {
 public:
  explicit NotificationRouter(NotificationConfig config) : config_(std::move(config)), flaps_(config_.flapping) {}

  // An alarm changed (on the board, by an acknowledgement, or a silence started or ended). The
  // opening that makes its subject flap is said once as "flapping"; until the subject is steady
  // again nothing more of its alarms is said (due_reminders says when it is). With
  // `notify` false (a cluster instance that does not lead) it only remembers the alarm, so a
  // later leader knows what was already said. A silenced alarm is remembered, not said; once
  // no silence holds it, what changed meanwhile is said (raised, if it never was).
  std::vector<NotificationEntry> on_alarm(const AlarmNotice& a, std::int64_t now_ms, bool notify = true);
  // Alarms the store restored at start: known, not news; reminders count from now. With
  // `told_cleared`, its clearance was already said (so only a new opening is news).
  void remember(const AlarmNotice& a, std::int64_t now_ms, bool told_cleared = false);
  // Reminders for open, unacknowledged, unsilenced alarms whose route repeats and whose last
  // word is older than its repeat_interval; escalation steps whose time since the alarm was
  // raised has come while it stayed open and unacknowledged; and the re-sends of Alertmanager
  // channels that are due; and "flapping_ended" for subjects steady for a window.
  std::vector<NotificationEntry> due_reminders(std::int64_t now_ms, bool notify = true);
  // Whether the alarm's subject flaps now (for the API and the board).
  bool flapping(const AlarmNotice& a) const;

  const NotificationConfig& config() const { return config_; }

 private:
  struct Known {
    AlarmNotice last;
    // As it was last notified (or known to have been, by another instance or a previous run);
    // empty when it never was: raised and silenced since. A silence that ends says what changed
    // since this.
    std::optional<AlarmNotice> said;
    std::map<std::string, std::int64_t> said_at_ms;  // per channel
    std::int64_t raised_at_ms = 0;                   // escalation steps count from here
    std::map<std::size_t, std::size_t> steps_taken;  // per route: how many escalation steps went out
  };
  // (route index, channel) for every channel the alarm goes to; the first matching route
  // decides a channel's grouping and reminders.
  std::vector<std::pair<std::size_t, std::string>> targets(const AlarmNotice& a) const;
  // targets(a), and the channels escalation steps already took it to: they hear how it ends.
  std::vector<std::pair<std::size_t, std::string>> audience(const Known& k, const AlarmNotice& a) const;
  void due_escalations(Known& k, std::int64_t now_ms, bool notify, std::vector<NotificationEntry>& out) const;
  // The subjects that stopped flapping: what their alarm is now, to those it goes to.
  void flapping_ended(std::int64_t now_ms, bool notify, std::vector<NotificationEntry>& out);
  NotificationEntry entry(std::size_t route, const std::string& channel, const AlarmNotice& a, const char* event) const;
  // Every open alarm routed to Alertmanager channel `channel`, as one entry that supersedes
  // the channel's re-send still pending (see due_reminders in the .cpp).
  NotificationEntry resend(const std::string& channel) const;

  NotificationConfig config_;
  std::map<std::uint64_t, Known> known_;              // alarms seen open, by id
  std::map<std::string, std::int64_t> resent_at_ms_;  // per Alertmanager channel
  FlapDetector flaps_;
  std::map<std::string, AlarmNotice> flapping_last_;  // per flapping subject: its newest alarm change
};

// A flapping subject: "goal/7", or the alarm's kind and post ("post_silent/bamako").
std::string flap_subject(const AlarmNotice& a);

}  // namespace postwatch::aggregator
