#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>

namespace postwatch::agent {

// Whether events the broker acknowledged have waited too long for the aggregator's
// confirmation. A broker may acknowledge a message and then lose it (NATS's MQTT listener in a
// stream leader's failover), and a confirmation may be lost on its way (a QoS 0 delivery in a
// reconnect). The aggregator asks for a resend when it sees a hole below later seqs, but not
// for the last events an agent sent. So after `first` without progress the agent sends its
// last window again (the aggregator drops what it has, and asks for what it misses below) and
// subscribes again (the retained confirmation comes back), then waits twice as long, up to
// `longest`, so an aggregator that is down or catching up is not flooded.
class ConfirmStall {
 public:
  using Clock = std::chrono::steady_clock;
  ConfirmStall(std::chrono::milliseconds first, std::chrono::milliseconds longest) : first_(first), longest_(longest) {}

  // Each pass of the send loop. `waiting`: some acknowledged event is not confirmed yet;
  // `confirmed`: the highest seq confirmed. True when it is time to send again.
  bool due(Clock::time_point now, bool waiting, std::uint64_t confirmed) {
    if (!waiting || confirmed > confirmed_) {
      confirmed_ = confirmed;
      since_ = waiting ? now : Clock::time_point{};
      wait_ = first_;
      return false;
    }
    if (since_ == Clock::time_point{}) {
      since_ = now;
      return false;
    }
    if (now - since_ < wait_) return false;
    since_ = now;
    last_ = wait_;
    wait_ = std::min(wait_ * 2, longest_);
    return true;
  }
  // After a reconnect everything unconfirmed is sent again anyway: start over.
  void reset() {
    since_ = {};
    wait_ = first_;
  }
  // How long the last due() that returned true had waited (for the log line).
  std::chrono::milliseconds waited() const { return last_; }

 private:
  std::chrono::milliseconds first_, longest_, wait_{first_}, last_{0};
  std::uint64_t confirmed_ = 0;
  Clock::time_point since_{};
};

}  // namespace postwatch::agent
