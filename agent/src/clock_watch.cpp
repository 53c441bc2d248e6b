#include "postwatch/agent/clock_watch.hpp"

#include "postwatch/clock.hpp"

#include <sys/timex.h>
#include <time.h>

namespace postwatch::agent {

namespace {

std::int64_t boot_time_ms() {
  timespec ts{};
  ::clock_gettime(CLOCK_BOOTTIME, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

}  // namespace

ClockWatch::ClockWatch(std::chrono::milliseconds threshold, Clock wall, Clock boot)
    : threshold_ms_(threshold.count()),
      wall_(wall ? std::move(wall) : Clock(now_utc_ms)),
      boot_(boot ? std::move(boot) : Clock(boot_time_ms)) {
  base_ = wall_() - boot_();
}

std::optional<ClockJump> ClockWatch::check() {
  const std::int64_t wall = wall_();
  const std::int64_t base = wall - boot_();
  const std::int64_t delta = base - base_;
  base_ = base;  // slewing below the threshold is followed, not accumulated
  if (delta > -threshold_ms_ && delta < threshold_ms_) return std::nullopt;
  jumps_ += 1;
  last_ = ClockJump{delta, wall};
  return last_;
}

std::int64_t agent_built_at_ms() {
#ifdef POSTWATCH_BUILT_AT_S
  return static_cast<std::int64_t>(POSTWATCH_BUILT_AT_S) * 1000;
#else
  return 0;
#endif
}

ClockSync clock_sync_from(std::optional<std::pair<int, int>> adjtimex_state, std::int64_t wall_now_ms,
                          std::int64_t built_at_ms) {
  if (wall_now_ms < built_at_ms) return ClockSync::Unsynchronised;
  if (!adjtimex_state) return ClockSync::Unknown;
  const auto [rc, status] = *adjtimex_state;
  if (rc == TIME_ERROR || (status & STA_UNSYNC) != 0) return ClockSync::Unsynchronised;
  return ClockSync::Synchronised;
}

std::optional<KernelClockState> read_kernel_clock() {
  timex tx{};
  tx.modes = 0;  // read only
  const int rc = ::adjtimex(&tx);
  if (rc < 0) return std::nullopt;
  return KernelClockState{rc, tx.status, tx.maxerror};
}

ClockSync read_clock_sync(std::int64_t wall_now_ms) {
  std::optional<std::pair<int, int>> state;
  if (auto k = read_kernel_clock()) state = std::pair{k->rc, k->status};
  return clock_sync_from(state, wall_now_ms, agent_built_at_ms());
}

}  // namespace postwatch::agent
