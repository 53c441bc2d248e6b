// How a postwatch-bench-* binary stops when told to (SIGINT/SIGTERM set a flag; the long loops
// check it and throw Interrupted, so every process the bench started is stopped by its owner's
// destructor), and the clock its figures are taken with.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <thread>

namespace postwatch::bench {

using Clock = std::chrono::steady_clock;

inline std::atomic<bool> g_stop{false};
inline void on_signal(int) { g_stop = true; }

struct Interrupted : std::runtime_error {
  Interrupted() : std::runtime_error("interrupted") {}
};
inline void check_stop() {
  if (g_stop) throw Interrupted();
}

inline double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// CLOCK_MONOTONIC: the same clock in every process of the machine.
inline std::int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

// Sleeps `d`, checking for a stop every 20 ms.
inline void sleep_checked(std::chrono::milliseconds d) {
  auto end = Clock::now() + d;
  while (Clock::now() < end) {
    check_stop();
    std::this_thread::sleep_for(std::min<Clock::duration>(end - Clock::now(), std::chrono::milliseconds(20)));
  }
}

}  // namespace postwatch::bench
