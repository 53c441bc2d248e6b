// status.json in the spool directory: written every second by `run`, read by `status` (and by
// the simulator's drain).
#pragma once

#include "postwatch/agent/agent.hpp"
#include "postwatch/agent/fleet_bundles.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>

namespace postwatch::agent::cli {

// Who releases events from the spool: "aggregator" or "broker".
const char* delivery_confirmer(const AgentConfig& c);

// The counts of the agents a fleet bundle replaced in this process: the status file counts
// from the process's start (postwatch-agent status, the simulator's drain), not from the switch.
struct EarlierCounts {
  std::uint64_t accepted = 0, sent = 0, confirmed = 0, rejected = 0, dropped = 0;
  std::uint64_t resend_requests = 0, stall_resends = 0, confirm_rejected = 0, reconnects = 0;
  void add(const Agent& agent);  // a replaced agent's counts
};

// The running agent's status: `agent`'s counts on top of `earlier`'s.
nlohmann::json status_json(const Agent& agent, const FleetBundles* fleet, const EarlierCounts& earlier);
// status_json() into the status file, written atomically; left as it was if the disk is full.
void write_status(const Agent& agent, const FleetBundles* fleet, const EarlierCounts& earlier);

}  // namespace postwatch::agent::cli
