// What an agent's threads share, under `mu`: the sources (Agent::submit), Paho's thread
// (confirmations, a lost connection) and the publisher thread (everything else). Agent::Impl
// is one; the InflightPublisher works on it.
#pragma once

#include "postwatch/agent/agent.hpp"
#include "postwatch/agent/clock_watch.hpp"
#include "postwatch/agent/confirm_tracker.hpp"
#include "postwatch/agent/urgent_lane.hpp"

#include "postwatch/clock.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace spdlog {
class logger;
}

namespace postwatch::agent {

struct AgentShared {
  AgentShared(std::unique_ptr<EventBacklog> b, std::shared_ptr<spdlog::logger> l);

  // Caller holds mu. A jump moves the backlog's age bound with it and marks the seqs stamped before it.
  void check_clock_locked();
  // Caller holds mu. Puts events read from the backlog on today's clock.
  void shift_to_current_clock_locked(std::vector<IndicatorEvent>& events);
  // Logs a failure, a repeating one once (counters.last_error).
  void note_error(const std::string& what);

  std::shared_ptr<spdlog::logger> log;
  mutable std::mutex mu;  // guards everything below
  std::condition_variable cv;
  std::unique_ptr<EventBacklog> backlog;
  UrgentLane urgent;  // copies of urgent events not yet passed by the main lane's cursor
  AgentStats counters;
  bool stopping = false;
  bool rebirth_requested = false, flush_requested = false;   // remote commands, acted on by run()
  std::deque<std::pair<std::string, std::string>> outgoing;  // topic, payload: command results
  bool connected = false;
  bool connection_lost = false;  // the client lost a connection it had; run() replaces it before reconnecting
  // A confirmation normally follows within a second or two (a cluster's takeover: a lease and a
  // redelivery, a few seconds): 15 s without one means it is not coming.
  static constexpr std::chrono::milliseconds kConfirmStallFirst{15'000};
  static constexpr std::chrono::milliseconds kConfirmStallLongest{300'000};
  // From the aggregator's confirm topic (Paho's thread), applied by run().
  ConfirmTracker confirms{kConfirmStallFirst, kConfirmStallLongest};

  std::int64_t started_ms = now_utc_ms();
  // The board's wall clock (docs/agent.md, "Time"). Checked on every submit and batch so the
  // seq where a jump happened is known to within the events accepted in between.
  ClockWatch clock_watch;
  ClockSync clock_sync = ClockSync::Unknown;
  // Events with seq < first_after were stamped on a clock delta_ms behind today's; a batch
  // sends them shifted so all its times are on the clock its sent_at is measured on.
  struct ClockShift {
    std::uint64_t first_after = 0;
    std::int64_t delta_ms = 0;
  };
  std::vector<ClockShift> clock_shifts;
  std::optional<ClockJump> unlogged_jump;  // logged, and told by heartbeat, outside the lock
};

}  // namespace postwatch::agent
