// The aggregator's delivery confirmations, as they arrive (docs/agent.md): each one decoded,
// checked (this agent's, signed by a trusted key) and handed to the ConfirmTracker
// (shared.confirms), whose outcome the publisher thread applies; and a stall noticed, which
// sends the unconfirmed events again.
#pragma once

#include "agent_shared.hpp"
#include "inflight_publisher.hpp"

#include "postwatch/agent/agent_config.hpp"
#include "postwatch/agent/agent_identity.hpp"

#include <chrono>
#include <set>
#include <string>

namespace postwatch::agent {

class ConfirmListener {
 public:
  ConfirmListener(const AgentConfig& config, AgentShared& shared, AgentIdentity& identity, InflightPublisher& sender,
                  std::string confirm_topic);

  // Paho's thread: the payload of a message on the confirm topic.
  void on_confirm(const std::string& payload);
  // The publisher thread: events the broker acknowledged but the aggregator did not confirm
  // for a while are sent again (ConfirmTracker::stalled). True if so: then subscribe again.
  bool resend_if_stalled(std::chrono::steady_clock::time_point now);

 private:
  // Logs a problem with the confirmations once (a retained or repeated message would flood the log).
  void note_problem(const std::string& what);

  const AgentConfig& config_;
  AgentShared& shared_;
  AgentIdentity& identity_;
  InflightPublisher& sender_;
  const std::string confirm_topic_;
  std::set<std::string> problems_logged_;  // guarded by shared.mu
};

}  // namespace postwatch::agent
