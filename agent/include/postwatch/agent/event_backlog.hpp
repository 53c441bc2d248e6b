// Where accepted events wait until they may go: with delivery.confirm: aggregator (the default),
// until the aggregator confirms it stored them (its confirmation on the agent's confirm topic,
// ConfirmTracker); with delivery.confirm: broker, once the broker acknowledged (PUBACK) the
// batch that carried them. Sending an event, or the broker acknowledging it, releases nothing
// in aggregator mode: it stays here, to be sent again, until confirmed. The agent assigns
// sequence numbers here so they stay monotonic for the backlog's lifetime (for the disk spool:
// across restarts).
#pragma once

#include "postwatch/event.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <vector>

namespace postwatch::agent {

// Thrown by append when the backlog refuses an event (full, disk error).
class BacklogRefused : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct BacklogStats {
  std::uint64_t events = 0;  // held, not yet released
  std::uint64_t bytes = 0;
  std::uint64_t dropped = 0;            // removed by an overflow policy
  std::int64_t oldest_appended_ms = 0;  // when the oldest held event was accepted (0: none)
};

class EventBacklog {
 public:
  virtual ~EventBacklog() = default;
  // Stores `e` with the next sequence number, which it returns. Not thread-safe:
  // the Agent serialises access.
  virtual std::uint64_t append(IndicatorEvent e) = 0;
  // Appends up to `max` events with seq >= from_seq, in seq order, to `out`.
  virtual std::size_t read(std::uint64_t from_seq, std::size_t max, std::vector<IndicatorEvent>& out) = 0;
  // Every event up to and including `seq` may go: the aggregator confirmed it (or, with
  // delivery.confirm: broker, the broker acknowledged the main-lane batch that carried it; an
  // urgent batch's acknowledgement releases nothing).
  virtual void release_through(std::uint64_t seq) = 0;
  // Sequence number of the oldest held event, or next_seq() when empty.
  virtual std::uint64_t first_seq() const = 0;
  virtual std::uint64_t next_seq() const = 0;
  virtual BacklogStats stats() const = 0;
  // Periodic upkeep (fsync, age bounds); called by the agent about once a second.
  virtual void maintain(std::int64_t now_ms) {
    if (auto disk_work = prepare_upkeep(now_ms)) disk_work();
  }
  // The same upkeep in two halves, so a slow disk holds up no other thread: this part needs the
  // backlog's state (call it under the lock that serialises the backlog) and returns the disk
  // work (fdatasync, writing the position file) to run once that lock is released. The returned
  // work touches nothing but its own copies; run it before the next prepare_upkeep().
  virtual std::function<void()> prepare_upkeep(std::int64_t /*now_ms*/) { return {}; }
  // The wall clock jumped by delta_ms: the times kept for the age bound move with it, so a
  // clock set forwards by years does not make every held event "too old" (docs/agent.md, "Time").
  virtual void clock_jumped(std::int64_t /*delta_ms*/) {}
};

}  // namespace postwatch::agent
