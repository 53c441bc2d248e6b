// A bounded in-memory backlog: for tests, the simulator's in-process agents and
// boards without writable storage. Events are lost on restart.
#pragma once

#include "postwatch/agent/event_backlog.hpp"

#include <deque>

namespace postwatch::agent {

class MemoryBacklog final : public EventBacklog {
 public:
  explicit MemoryBacklog(std::size_t max_events, std::uint64_t first_seq = 1);
  std::uint64_t append(IndicatorEvent e) override;
  std::size_t read(std::uint64_t from_seq, std::size_t max, std::vector<IndicatorEvent>& out) override;
  void release_through(std::uint64_t seq) override;
  std::uint64_t first_seq() const override;
  std::uint64_t next_seq() const override { return next_seq_; }
  BacklogStats stats() const override;
  void clock_jumped(std::int64_t delta_ms) override;

 private:
  std::size_t max_events_;
  std::uint64_t next_seq_;
  std::deque<IndicatorEvent> events_;
  std::deque<std::int64_t> appended_ms_;
};

}  // namespace postwatch::agent
