#include "postwatch/agent/memory_backlog.hpp"

#include "postwatch/clock.hpp"

#include <algorithm>

namespace postwatch::agent {

MemoryBacklog::MemoryBacklog(std::size_t max_events, std::uint64_t first_seq)
    : max_events_(max_events), next_seq_(first_seq) {}

std::uint64_t MemoryBacklog::append(IndicatorEvent e) {
  if (events_.size() >= max_events_)
    throw BacklogRefused("backlog full (" + std::to_string(max_events_) + " events waiting for the broker)");
  e.seq = next_seq_++;
  events_.push_back(std::move(e));
  appended_ms_.push_back(now_utc_ms());
  return events_.back().seq;
}

std::size_t MemoryBacklog::read(std::uint64_t from_seq, std::size_t max, std::vector<IndicatorEvent>& out) {
  if (events_.empty() || from_seq >= next_seq_) return 0;
  std::size_t start = from_seq <= events_.front().seq ? 0 : static_cast<std::size_t>(from_seq - events_.front().seq);
  std::size_t n = std::min(max, events_.size() - start);
  for (std::size_t i = 0; i < n; ++i) out.push_back(events_[start + i]);
  return n;
}

void MemoryBacklog::release_through(std::uint64_t seq) {
  while (!events_.empty() && events_.front().seq <= seq) {
    events_.pop_front();
    appended_ms_.pop_front();
  }
}

std::uint64_t MemoryBacklog::first_seq() const { return events_.empty() ? next_seq_ : events_.front().seq; }

BacklogStats MemoryBacklog::stats() const {
  BacklogStats s;
  s.events = events_.size();
  s.bytes = events_.size() * sizeof(IndicatorEvent);
  if (!events_.empty()) s.oldest_appended_ms = appended_ms_.front();
  return s;
}

void MemoryBacklog::clock_jumped(std::int64_t delta_ms) {
  for (auto& t : appended_ms_) t += delta_ms;
}

}  // namespace postwatch::agent
