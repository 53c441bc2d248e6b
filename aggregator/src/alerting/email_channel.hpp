// The email channel (docs/alerting.md, "Email"): one plain-text message per notification,
// sent over SMTP by libcurl, with STARTTLS unless the file says "tls": "none". Blocking,
// like the webhook: only the outbox's worker calls deliver().
#pragma once

#include "alerting/delivery_result.hpp"
#include "alerting/notification_config.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

namespace postwatch::aggregator {

// The message for a notification ({"notification_id", ..., "alarms": [...]}): RFC 5322 headers
// (Date, From, To, Subject naming level, kind, goal or post, Message-ID from the notification
// id, so the copies of one notification share it), a blank line and the plain-text body,
// lines ending in CRLF.
std::string email_message(const nlohmann::json& notification, const EmailChannelConfig& config,
                          const std::string& dashboard_url, std::int64_t now_ms);

class EmailChannel {
 public:
  EmailChannel(EmailChannelConfig config, std::string dashboard_url)
      : config_(std::move(config)), dashboard_url_(std::move(dashboard_url)) {}
  DeliveryResult deliver(const std::string& body, std::int64_t now_ms) const;

 private:
  EmailChannelConfig config_;
  std::string dashboard_url_;
};

}  // namespace postwatch::aggregator
