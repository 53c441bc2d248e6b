// The board's wall clock as the agent sees it (docs/agent.md, "Time"): whether the kernel
// says it is synchronised, and when it jumps while the agent runs.
//
// A jump is a change of (wall - boot-time) between two checks: the boot-time clock
// (CLOCK_BOOTTIME) only moves forwards, and counts suspend, so a board that sleeps is not
// taken for a jump. NTP's slewing moves it by at most 0.5 ms/s, far below the threshold.
#pragma once

#include "postwatch/event.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>

namespace postwatch::agent {

struct ClockJump {
  std::int64_t delta_ms = 0;  // + forwards
  std::int64_t at_ms = 0;     // the wall clock just after it
};

class ClockWatch {
 public:
  using Clock = std::function<std::int64_t()>;  // milliseconds
  static constexpr std::chrono::milliseconds kDefaultThreshold{2000};

  // wall and boot default to the system's CLOCK_REALTIME and CLOCK_BOOTTIME; tests inject theirs.
  explicit ClockWatch(std::chrono::milliseconds threshold = kDefaultThreshold, Clock wall = {}, Clock boot = {});

  // Compares the clocks with the last check; a jump is counted and returned once.
  std::optional<ClockJump> check();
  std::uint32_t jumps() const { return jumps_; }
  const std::optional<ClockJump>& last_jump() const { return last_; }
  std::int64_t wall_ms() const { return wall_(); }

 private:
  std::int64_t threshold_ms_;
  Clock wall_, boot_;
  std::int64_t base_ = 0;  // wall - boot at the last check
  std::uint32_t jumps_ = 0;
  std::optional<ClockJump> last_;
};

// The kernel's view of the wall clock (adjtimex, read only): its return code (TIME_OK …
// TIME_ERROR), status bits and error bound. nullopt when adjtimex is refused (some sandboxes).
struct KernelClockState {
  int rc = 0;
  int status = 0;
  long maxerror_us = 0;
};
std::optional<KernelClockState> read_kernel_clock();

// What the kernel says of the wall clock (adjtimex: TIME_ERROR or STA_UNSYNC mean not
// synchronised), overruled by a clock before this agent was built, which cannot be right.
// Unknown when adjtimex is refused (some sandboxes).
ClockSync read_clock_sync(std::int64_t wall_now_ms);
// Pure part of read_clock_sync, for tests: adjtimex's return code and status, or nullopt if refused.
ClockSync clock_sync_from(std::optional<std::pair<int, int>> adjtimex_state, std::int64_t wall_now_ms,
                          std::int64_t built_at_ms);
// When this agent was built (SOURCE_DATE_EPOCH, or when CMake configured it), UTC ms.
std::int64_t agent_built_at_ms();

}  // namespace postwatch::agent
