// How far one agent's clock is from ours, estimated from the messages it sends, and the
// correction its event times get (docs/aggregator.md, "Time").
//
// Each batch's sent_at (and each heartbeat's at_ms) against our receive time is one
// sample: the agent's offset minus the message's delay. A delay is never negative, so a
// sample can make a clock look slow, never fast. The estimate is therefore the largest
// recent sample (the least-delayed one, as NTP's clock filter picks), and:
//  - a fast clock is believed at once;
//  - a slow clock only from a sample that cannot have waited long: a heartbeat (QoS 0,
//    which the broker never queues for an absent subscriber), or a batch that arrived
//    while nothing could have been queued for us (ClockSample::prompt).
// A clock jump the agent reports (a new clock epoch, a birth) restarts the estimate; a
// backward jump it did not report shows as several prompt samples well below it.
#pragma once

#include <array>
#include <climits>
#include <cstdint>

namespace postwatch::aggregator {

struct ClockPolicy {
  // Offsets within this are delay and noise: times are kept as sent. Beyond it they are
  // corrected, and the post gets a warning alarm.
  std::int64_t correct_beyond_ms = 60'000;
  std::int64_t window_ms = 5LL * 60'000;  // samples older than this (our clock) are forgotten
};

// a - b, saturated: agent times are whatever the wire carried, any int64.
inline std::int64_t saturating_sub(std::int64_t a, std::int64_t b) {
  std::int64_t r = 0;
  if (!__builtin_sub_overflow(a, b, &r)) return r;
  return b < 0 ? INT64_MAX : INT64_MIN;
}

struct ClockSample {
  std::int64_t offset_ms = 0;  // agent clock minus ours
  std::int64_t at_ms = 0;      // our clock, at receipt
  bool prompt = false;         // its delay is known to be short (see above)
};

class ClockOffset {
 public:
  static constexpr std::size_t kSamples = 8;
  static constexpr std::size_t kBackwardSamples = 3;  // prompt samples below the estimate that restart it

  void observe(ClockSample s, const ClockPolicy& policy);
  // The agent's clock jumped or it restarted: what was measured no longer holds.
  void restart();

  bool measured() const { return count_ > 0; }
  std::int64_t estimate_ms() const { return estimate_; }  // the largest recent sample
  // What to subtract from the agent's times: 0 while its clock is within the policy's bound
  // or only looks slow from samples that may have waited.
  std::int64_t correction_ms() const { return correction_; }
  std::uint64_t restarts() const { return restarts_; }

 private:
  void decide(const ClockPolicy& policy);
  // Samples are clamped to this (about 3 million years), so the arithmetic on them cannot overflow.
  static constexpr std::int64_t kMaxOffsetMs = std::int64_t{1} << 56;

  std::array<ClockSample, kSamples> samples_{};  // ring, newest at (next_ - 1)
  std::size_t count_ = 0, next_ = 0;
  std::int64_t estimate_ = 0, correction_ = 0;
  std::uint64_t restarts_ = 0;
};

}  // namespace postwatch::aggregator
