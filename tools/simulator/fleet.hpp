// The simulated posts' agents, as the simulation sees them: one per (post, n), each
// taking events and publishing them to the broker. Two kinds: the real
// postwatch::agent::Agent in this process (InProcessFleet, for load), or one
// postwatch-agent process each, fed through its FIFO (ProcessFleet, for realism).
#pragma once

#include "postwatch/agent/agent.hpp"
#include "postwatch/event.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace postwatch::sim {

struct AgentSpec {
  // Seqs restart at 1 with each run, and the aggregator drops seqs it has seen from an
  // agent id as duplicates: each run needs its own ids (docs/wire-format.md,
  // "Sequence numbers and duplicates"), hence a run tag in every id.
  std::string agent_id;
  std::string post_id;
  std::string broker_uri;                     // the broker, or this agent's uplink through the relay (uplink_relay.hpp)
  std::vector<std::string> broker_fallbacks;  // --broker's further URIs: the agent's broker_fallbacks
  std::string label;                          // short, for log lines: "sim-3/bamako"
  std::filesystem::path identity_dir;         // enrolled (--enrol): its key files here; empty: unsigned
  BatchCompression compression = BatchCompression::None;  // --compression: the agent's uplink.compression
  std::filesystem::path fleet_key_file;  // --fleet-keys (--processes): the agent takes fleet bundles and commands
};

struct FleetTotals {
  std::uint64_t accepted = 0, sent = 0, confirmed = 0, rejected = 0, backlog = 0;
  std::size_t connected = 0, agents = 0;
};

class Fleet {
 public:
  virtual ~Fleet() = default;

  virtual void start() = 0;
  // True once every agent is connected; false at the deadline or when `cancel` is set.
  virtual bool wait_connected(std::chrono::milliseconds timeout, const std::atomic<bool>& cancel) = 0;
  // Waits up to `timeout` for every accepted event to be acknowledged, then stops the agents.
  virtual bool drain_and_stop(std::chrono::milliseconds timeout) = 0;

  virtual agent::SubmitResult submit(std::size_t agent, IndicatorEvent event) = 0;
  virtual std::size_t size() const = 0;
  virtual const std::string& agent_id(std::size_t agent) const = 0;
  // Events the agent holds that the broker has not acknowledged yet.
  virtual std::uint64_t backlog_events(std::size_t agent) const = 0;
  virtual FleetTotals totals() const = 0;
  // The first agent's last error that is not empty, for start-up diagnostics.
  virtual std::string last_error() const = 0;
  // After drain_and_stop(): agents that did not stop in time (their threads still run).
  virtual std::vector<std::string> stuck_agents() const { return {}; }
};

}  // namespace postwatch::sim
