#include "alerting/webhook_channel.hpp"

#include "alerting/curl_support.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>

namespace postwatch::aggregator {

std::string hmac_sha256_hex(std::string_view key, std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), mac.data(), &len);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[mac[i] >> 4];
    out += kHex[mac[i] & 0xf];
  }
  return out;
}

DeliveryResult WebhookChannel::deliver(const std::string& body, std::int64_t now_ms) const {
  return post_json(config_.url, body,
                   {"X-Postwatch-Timestamp: " + std::to_string(now_ms / 1000),
                    "X-Postwatch-Signature: sha256=" + hmac_sha256_hex(config_.secret, body)},
                   config_.transport);
}

}  // namespace postwatch::aggregator
