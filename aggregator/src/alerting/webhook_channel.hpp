// The webhook channel: one JSON POST per notification, signed so the receiver can tell it
// came from us (docs/alerting.md, "Verifying a notification"). Blocking (libcurl's easy
// interface, bounded by the channel's timeout): only the NotificationOutbox's worker thread
// calls deliver(), never the io thread.
#pragma once

#include "alerting/delivery_result.hpp"
#include "alerting/notification_config.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace postwatch::aggregator {

// Lowercase hex of HMAC-SHA256(key, data).
std::string hmac_sha256_hex(std::string_view key, std::string_view data);

class WebhookChannel {
 public:
  explicit WebhookChannel(WebhookChannelConfig config) : config_(std::move(config)) {}

  // POSTs `body` (application/json) with X-Postwatch-Timestamp (Unix seconds) and
  // X-Postwatch-Signature: sha256=<hmac_sha256_hex(secret, body)>. Any 2xx is delivered.
  DeliveryResult deliver(const std::string& body, std::int64_t now_ms) const;
  const std::string& name() const { return config_.name; }

 private:
  WebhookChannelConfig config_;
};

}  // namespace postwatch::aggregator
