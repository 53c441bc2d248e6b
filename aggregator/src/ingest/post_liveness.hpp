// Silent posts: a post that reported before but has not been heard from (events
// or heartbeats) for `missed_heartbeats` heartbeat intervals, or whose agents are
// all offline, no longer counts as reporting.
#pragma once

#include "ingest/agent_table.hpp"
#include "postwatch/catalogue.hpp"
#include "rollup/indicator_state.hpp"

#include <cstdint>
#include <vector>

namespace postwatch::aggregator {

struct LivenessPolicy {
  int missed_heartbeats = 3;
  std::int64_t default_interval_ms = 30'000;  // when no birth told us the agent's interval
};

std::vector<bool> silent_posts(const IndicatorCatalogue& catalogue, const AgentTable& agents,
                               const IndicatorState& state, std::int64_t now_ms, const LivenessPolicy& policy);

}  // namespace postwatch::aggregator
