// The bandwidth cap of a post on a thin link (uplink.max_kbit_s, docs/agent.md "Thin links"):
// a token bucket over the MQTT bytes the agent sends. Pure: the caller says what time it is, so
// it is unit-tested without a clock or a broker.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace postwatch::agent {

class UplinkBudget {
 public:
  using Clock = std::chrono::steady_clock;

  // `bytes_per_s` 0: no cap. The bucket holds one second's worth, and starts full.
  explicit UplinkBudget(std::uint64_t bytes_per_s = 0, Clock::time_point now = Clock::now());

  bool capped() const { return rate_ != 0; }
  std::uint64_t bytes_per_s() const { return rate_; }

  // How long a message of `bytes` must wait before it may go (zero: now). A message larger than
  // the bucket goes once the bucket is full, and the ones after it wait for what it overdrew:
  // over time the rate is the cap, whatever the message sizes.
  std::chrono::milliseconds delay(std::size_t bytes, Clock::time_point now);
  // The message went: its bytes are taken (also when it did not wait, as a heartbeat does not).
  void spend(std::size_t bytes, Clock::time_point now);

  // Every byte spent since the start, and the rate over the window that ended at the last
  // take_rate() (for the heartbeat: what the link achieved since the previous one).
  std::uint64_t sent_bytes() const { return sent_; }
  std::uint64_t take_rate(Clock::time_point now);

 private:
  void refill(Clock::time_point now);

  std::uint64_t rate_;
  double tokens_;
  Clock::time_point at_;
  std::uint64_t sent_ = 0;
  std::uint64_t window_sent_ = 0;
  Clock::time_point window_start_;
};

// The bytes an MQTT 3.1.1 PUBLISH of `payload` bytes on `topic` takes on the connection (fixed
// header, remaining length, topic, packet id for QoS 1 or 2): what the cap counts.
std::size_t mqtt_publish_bytes(std::string_view topic, std::size_t payload, int qos);

}  // namespace postwatch::agent
