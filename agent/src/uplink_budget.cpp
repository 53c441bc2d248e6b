#include "postwatch/agent/uplink_budget.hpp"

#include <algorithm>
#include <cmath>

namespace postwatch::agent {

UplinkBudget::UplinkBudget(std::uint64_t bytes_per_s, Clock::time_point now)
    : rate_(bytes_per_s), tokens_(static_cast<double>(bytes_per_s)), at_(now), window_start_(now) {}

void UplinkBudget::refill(Clock::time_point now) {
  if (now <= at_) return;
  const double seconds = std::chrono::duration<double>(now - at_).count();
  tokens_ = std::min(static_cast<double>(rate_), tokens_ + seconds * static_cast<double>(rate_));
  at_ = now;
}

std::chrono::milliseconds UplinkBudget::delay(std::size_t bytes, Clock::time_point now) {
  if (!capped()) return std::chrono::milliseconds(0);
  refill(now);
  // A message larger than the bucket needs a full bucket, not more than it can hold.
  const double needed = std::min(static_cast<double>(bytes), static_cast<double>(rate_));
  if (tokens_ >= needed) return std::chrono::milliseconds(0);
  const double ms = std::ceil((needed - tokens_) * 1000.0 / static_cast<double>(rate_));
  return std::chrono::milliseconds(static_cast<std::int64_t>(ms));
}

void UplinkBudget::spend(std::size_t bytes, Clock::time_point now) {
  sent_ += bytes;
  window_sent_ += bytes;
  if (!capped()) return;
  refill(now);
  tokens_ -= static_cast<double>(bytes);
}

std::uint64_t UplinkBudget::take_rate(Clock::time_point now) {
  const double seconds = std::chrono::duration<double>(now - window_start_).count();
  const auto rate = seconds > 0 ? static_cast<std::uint64_t>(static_cast<double>(window_sent_) / seconds) : 0;
  window_sent_ = 0;
  window_start_ = now;
  return rate;
}

std::size_t mqtt_publish_bytes(std::string_view topic, std::size_t payload, int qos) {
  const std::size_t remaining = 2 + topic.size() + (qos > 0 ? 2 : 0) + payload;
  std::size_t length_bytes = 1;
  for (std::size_t r = remaining; r >= 128; r >>= 7) ++length_bytes;
  return 1 + length_bytes + remaining;
}

}  // namespace postwatch::agent
