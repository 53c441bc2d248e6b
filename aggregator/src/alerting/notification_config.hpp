// The notifications file (--notifications FILE, docs/alerting.md): which channels exist and
// which alarms go to which of them. Validated once at start, like the tokens file: a problem
// names the file, the entry and what is wrong. Channel secrets are read from their own 0600
// files and never appear in a message or a log line.
#pragma once

#include "alerting/flap_detector.hpp"
#include "postwatch/catalogue.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace postwatch::aggregator {

// Thrown by NotificationConfig::load/parse; what() names the file, the entry and the problem.
class NotificationConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// How a channel reaches its server (curl_support.hpp): timeout_s; ca_file, the CA certificates
// to trust instead of the system's (a ministry's internal CA); and a username with its
// password_file where the channel takes a login.
struct ChannelTransport {
  std::int64_t timeout_ms = 10'000;
  std::string ca_file;             // trust these CAs instead of the system's; checked at start
  std::string username, password;  // password from password_file; never logged
};

struct WebhookChannelConfig {
  std::string name;
  std::string url;     // http:// or https://
  std::string secret;  // the HMAC key, from secret_file; never logged
  ChannelTransport transport;
};

// Alertmanager (docs/alerting.md, "Alertmanager"): alarms as alerts, POSTed to
// <url>/api/v2/alerts, and every open one re-sent each resend_interval until it closes.
struct AlertmanagerChannelConfig {
  std::string name;
  std::string url;                           // the Alertmanager's base URL, http:// or https://
  ChannelTransport transport;                // username and password_file: HTTP basic auth (its web.config.file)
  std::int64_t resend_interval_ms = 60'000;  // below Alertmanager's resolve_timeout (5 min by default)
};

// Email over SMTP, through libcurl (docs/alerting.md, "Email").
struct EmailChannelConfig {
  std::string name;
  std::string smtp_url;  // smtp://host[:port] or smtps://host[:port]
  bool starttls = true;  // "tls": "starttls" (the default) or "none"; smtps:// is TLS from the start
  std::string from;
  std::vector<std::string> to;
  ChannelTransport transport{30'000, {}, {}, {}};  // username and password_file: SMTP AUTH
};

// One entry of "channels"; its "kind" (or "type") chooses the alternative.
using ChannelConfig = std::variant<WebhookChannelConfig, AlertmanagerChannelConfig, EmailChannelConfig>;
const std::string& channel_name(const ChannelConfig& c);
std::string_view channel_kind(const ChannelConfig& c);  // webhook, alertmanager or email

// Every list that is not empty must hold the alarm's value; an empty matcher matches all.
struct AlarmMatcher {
  std::vector<std::string> kinds;    // goal, post_silent, topic_mismatch, clock_offset, store_failing
  std::vector<std::string> levels;   // amber, red
  std::vector<int> goals;            // a goal alarm's goal
  std::vector<std::string> pillars;  // the pillar of a goal alarm's goal
  std::vector<std::string> regions;  // the region of the alarm's post or of any cause's post
  std::vector<std::string> posts;    // the alarm's post or any cause's post
};

// A matcher from JSON ({"post": "bamako"} or {"level": ["red"], "region": [...]}), checked
// against the catalogue; throws NotificationConfigError naming `where`. Routes and silences use it.
AlarmMatcher parse_alarm_matcher(const nlohmann::json& m, const std::string& where,
                                 const IndicatorCatalogue& catalogue);

// One step of a route's escalation chain: an alarm still open and unacknowledged `after_ms`
// after it was raised goes to `channels` too.
struct EscalationStep {
  std::int64_t after_ms = 0;
  std::vector<std::string> channels;
};

struct NotificationRoute {
  AlarmMatcher match;
  std::vector<std::string> channels;     // names in NotificationConfig::channels
  std::int64_t group_wait_ms = 0;        // changes within this of the first go in one notification
  std::int64_t repeat_interval_ms = 0;   // 0: no reminders while the alarm stays open
  std::vector<EscalationStep> escalate;  // in order of after_ms; empty: no escalation
};

struct NotificationConfig {
  std::vector<ChannelConfig> channels;
  std::vector<NotificationRoute> routes;
  std::string dashboard_url;              // "dashboard_url": linked from emails and Alertmanager alerts; may be empty
  std::int64_t retry_initial_ms = 1'000;  // the first retry waits this; each next one twice as long
  std::int64_t retry_max_ms = 300'000;    // ... up to this
  std::int64_t warn_pending_after_ms = 600'000;  // a notification pending longer is logged as a warning
  FlapConfig flapping;                           // "flapping": {"openings", "window_s"}

  // Reads and checks `file`; secret_file paths are relative to the file's folder.
  static NotificationConfig load(const std::filesystem::path& file, const IndicatorCatalogue& catalogue);
  // `origin` names the source in messages; `base_dir` resolves relative secret_file paths.
  static NotificationConfig parse(std::string_view json_text, const std::string& origin,
                                  const std::filesystem::path& base_dir, const IndicatorCatalogue& catalogue);

  const ChannelConfig* find_channel(std::string_view name) const;
};

}  // namespace postwatch::aggregator
