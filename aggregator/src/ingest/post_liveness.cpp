#include "ingest/post_liveness.hpp"

#include <algorithm>

namespace postwatch::aggregator {

std::vector<bool> silent_posts(const IndicatorCatalogue& catalogue, const AgentTable& agent_table,
                               const IndicatorState& state, std::int64_t now_ms, const LivenessPolicy& policy) {
  const std::size_t n = catalogue.posts().size();
  std::vector<std::int64_t> last_heard(n, 0), interval(n, 0), promised(n, 0);
  std::vector<int> agents(n, 0), online(n, 0), one_shots(n, 0);
  for (std::uint32_t p = 0; p < n; ++p) last_heard[p] = state.post_last_seen_ms(p);
  for (const auto& r : agent_table) {
    if (!r.has_presence) continue;
    const auto& a = r.presence;
    if (a.one_shot) {
      // A one-shot sender (emit) leaves by design: only the interval it promised makes its absence
      // silence. Without a promise it never makes its post silent.
      one_shots[r.post] += 1;
      last_heard[r.post] = std::max(last_heard[r.post], a.born_at_ms);
      promised[r.post] = std::max(promised[r.post], std::int64_t{a.heartbeat_interval_s} * 1000);
      continue;
    }
    agents[r.post] += 1;
    online[r.post] += a.online;
    // A birth is hearing from the agent: a new agent is not silent before its first heartbeat is due.
    last_heard[r.post] = std::max({last_heard[r.post], a.last_heartbeat_ms, a.born_at_ms});
    const std::int64_t agent_interval_ms = static_cast<std::int64_t>(a.heartbeat_interval_s) * 1000;
    interval[r.post] = std::max(interval[r.post], agent_interval_ms);
  }
  std::vector<bool> silent(n, false);
  for (std::size_t p = 0; p < n; ++p) {
    if (last_heard[p] == 0 && agents[p] == 0) continue;  // never reported: not expected, not silent
    if (catalogue.posts()[p].is_ministry()) continue;    // reports figures now and then, not signals
    if (agents[p] == 0 && one_shots[p] > 0) {            // fed by one-shot senders only
      silent[p] = promised[p] > 0 && now_ms - last_heard[p] > policy.missed_heartbeats * promised[p];
      continue;
    }
    std::int64_t limit = policy.missed_heartbeats * (interval[p] ? interval[p] : policy.default_interval_ms);
    bool all_offline = agents[p] > 0 && online[p] == 0;
    silent[p] = all_offline || now_ms - last_heard[p] > limit;
  }
  return silent;
}

}  // namespace postwatch::aggregator
