#include "ingest/clock_offset.hpp"

#include <algorithm>
#include <cstdlib>

namespace postwatch::aggregator {

void ClockOffset::restart() {
  count_ = next_ = 0;
  estimate_ = correction_ = 0;
  restarts_ += 1;
}

void ClockOffset::observe(ClockSample s, const ClockPolicy& policy) {
  s.offset_ms = std::clamp(s.offset_ms, -kMaxOffsetMs, kMaxOffsetMs);
  // Forget what the window no longer covers (oldest first, so the ring stays contiguous).
  while (count_ > 0) {
    const ClockSample& oldest = samples_[(next_ + kSamples - count_) % kSamples];
    if (s.at_ms - oldest.at_ms <= policy.window_ms) break;
    --count_;
  }
  samples_[next_] = s;
  next_ = (next_ + 1) % kSamples;
  count_ = std::min(count_ + 1, kSamples);

  // A clock set back without the agent saying so (an old agent, a jump below its
  // threshold repeated): the newest prompt samples all sit well below the rest.
  if (count_ > kBackwardSamples) {
    std::int64_t older_max = INT64_MIN;
    for (std::size_t i = kBackwardSamples; i < count_; ++i)
      older_max = std::max(older_max, samples_[(next_ + kSamples - 1 - i) % kSamples].offset_ms);
    bool all_below = true;
    for (std::size_t i = 0; i < kBackwardSamples && all_below; ++i) {
      const ClockSample& n = samples_[(next_ + kSamples - 1 - i) % kSamples];
      all_below = n.prompt && n.offset_ms < older_max - policy.correct_beyond_ms;
    }
    if (all_below) count_ = kBackwardSamples;
  }
  decide(policy);
}

void ClockOffset::decide(const ClockPolicy& policy) {
  const ClockSample* best = nullptr;
  for (std::size_t i = 0; i < count_; ++i) {
    const ClockSample& c = samples_[(next_ + kSamples - 1 - i) % kSamples];
    if (!best || c.offset_ms > best->offset_ms || (c.offset_ms == best->offset_ms && c.prompt)) best = &c;
  }
  if (!best) return;
  estimate_ = best->offset_ms;
  if (estimate_ > policy.correct_beyond_ms) {
    correction_ = estimate_;  // delay cannot make a clock look fast
  } else if (estimate_ >= -policy.correct_beyond_ms) {
    correction_ = 0;
  } else {
    // Looks slow. A prompt sample proves it; otherwise the message may have waited in the
    // broker (our restart), so keep what was decided, unless the estimate contradicts it.
    bool prompt = false;
    for (std::size_t i = 0; i < count_; ++i) {
      const ClockSample& c = samples_[(next_ + kSamples - 1 - i) % kSamples];
      prompt = prompt || (c.prompt && c.offset_ms >= estimate_ - policy.correct_beyond_ms);
    }
    if (prompt)
      correction_ = estimate_;
    else if (std::llabs(estimate_ - correction_) > policy.correct_beyond_ms)
      correction_ = 0;
  }
}

}  // namespace postwatch::aggregator
