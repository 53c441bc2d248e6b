#include "agent_shared.hpp"

#include <spdlog/spdlog.h>

namespace postwatch::agent {

AgentShared::AgentShared(std::unique_ptr<EventBacklog> b, std::shared_ptr<spdlog::logger> l)
    : log(std::move(l)), backlog(std::move(b)) {}

void AgentShared::check_clock_locked() {
  auto jump = clock_watch.check();
  if (!jump) return;
  backlog->clock_jumped(jump->delta_ms);
  started_ms += jump->delta_ms;
  if (backlog->next_seq() > backlog->first_seq()) clock_shifts.push_back({backlog->next_seq(), jump->delta_ms});
  unlogged_jump = jump;
  clock_sync = read_clock_sync(jump->at_ms);
}

void AgentShared::shift_to_current_clock_locked(std::vector<IndicatorEvent>& events) {
  while (!clock_shifts.empty() && clock_shifts.front().first_after <= backlog->first_seq())
    clock_shifts.erase(clock_shifts.begin());  // everything stamped before it is released
  if (clock_shifts.empty()) return;
  for (auto& e : events) {
    std::int64_t shift = 0;
    for (const auto& c : clock_shifts)
      if (e.seq < c.first_after) shift += c.delta_ms;
    e.observed_at_ms += shift;
  }
}

void AgentShared::note_error(const std::string& what) {
  {
    std::lock_guard lk(mu);
    if (counters.last_error == what) return;  // log a repeating failure once
    counters.last_error = what;
  }
  log->warn("{}", what);
}

}  // namespace postwatch::agent
