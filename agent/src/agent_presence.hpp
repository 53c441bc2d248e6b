// What the agent says of itself (docs/agent.md, "Birth, death and heartbeat"): its birth
// (retained, with the first seq its spool still holds), the heartbeat with its self-metrics,
// and its death, which the broker also keeps as the connection's last will. Signed once the
// agent is enrolled.
//
// Publishes on the publisher thread only; metrics_locked() and the fleet report on any thread.
#pragma once

#include "agent_shared.hpp"
#include "broker_connection.hpp"
#include "inflight_publisher.hpp"

#include "postwatch/agent/agent_config.hpp"
#include "postwatch/agent/agent_identity.hpp"

#include "postwatch/wire_codec.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace postwatch::agent {

class AgentPresence {
 public:
  AgentPresence(const AgentConfig& config, AgentShared& shared, const AgentIdentity& identity,
                BrokerConnection& connection, InflightPublisher& sender, std::string state_topic,
                std::string heartbeat_topic);

  void publish_birth(std::uint64_t first_unacked);
  // Also measures the uplink's rate since the last heartbeat.
  void publish_heartbeat();
  // The offline state, signed: the last will of each connection, and what a clean stop says.
  std::string death() const;

  // Caller holds shared.mu.
  AgentMetrics metrics_locked() const;
  // Caller holds shared.mu. What births and heartbeats say of fleet bundles from now on.
  void set_fleet_report_locked(const FleetReport& report) { fleet_report_ = report; }

 private:
  AgentState state(bool online) const;

  const AgentConfig& config_;
  AgentShared& shared_;
  const AgentIdentity& identity_;
  BrokerConnection& connection_;
  InflightPublisher& sender_;
  const std::string state_topic_, heartbeat_topic_;
  std::optional<FleetReport> fleet_report_;  // guarded by shared.mu
  const std::chrono::steady_clock::time_point started_steady_ = std::chrono::steady_clock::now();  // uptime
};

}  // namespace postwatch::agent
