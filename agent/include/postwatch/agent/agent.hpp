// One agent: validates events from local sources, holds them in an EventBacklog
// and publishes them in batches (QoS 1) until the aggregator confirms them (or, with
// DeliveryConfirmMode::Broker, until the broker acknowledges them).
#pragma once

#include "postwatch/agent/agent_config.hpp"
#include "postwatch/agent/event_backlog.hpp"
#include "postwatch/catalogue.hpp"
#include "postwatch/event.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace spdlog {
class logger;
}

namespace postwatch::agent {

struct AgentStats {
  std::uint64_t accepted = 0;
  std::uint64_t rejected = 0;  // refused by validation or a full backlog
  std::uint64_t sent = 0;      // acknowledged by the broker
  std::uint64_t batches_sent = 0;
  std::uint64_t confirmed = 0;              // released from the backlog on the aggregator's confirmation
  std::uint64_t confirmed_through_seq = 0;  // highest seq the aggregator confirmed (and this backlog issued)
  std::uint64_t sent_through_seq = 0;       // highest seq the broker acknowledged
  std::uint64_t resend_requests = 0;        // the aggregator asked to send again from a seq
  std::uint64_t stall_resends = 0;          // sent again because no confirmation came (ConfirmStall)
  std::uint64_t confirm_rejected = 0;       // confirmations ignored: malformed, another agent's, unknown seqs
  std::uint64_t reconnects = 0;
  std::uint64_t heartbeats_sent = 0;
  std::uint64_t births_sent = 0;      // handed to the broker; one per connection
  std::uint64_t urgent_sent = 0;      // of `sent`, events that went on the urgent lane
  std::uint64_t urgent_overflow = 0;  // urgent events left in seq order: the urgent lane was full
  bool connected = false;
  BacklogStats backlog;
  std::string last_error;
  std::int64_t started_at_ms = 0;
  ClockSync clock_sync = ClockSync::Unknown;  // what the kernel says of the board's clock
  std::uint32_t clock_jumps = 0;              // wall-clock jumps seen while running
  std::int64_t last_clock_jump_ms = 0;        // + forwards
};

// Result of submitting one event: accepted (with its seq) or why not.
struct SubmitResult {
  bool accepted = false;
  std::uint64_t seq = 0;
  std::string error;
};

class Agent {
 public:
  Agent(AgentConfig config, std::shared_ptr<const IndicatorCatalogue> catalogue, std::unique_ptr<EventBacklog> backlog,
        std::shared_ptr<spdlog::logger> log);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Before start(): further topics to subscribe to on every connection (fleet bundles), and
  // what gets their messages, on Paho's thread: it should queue them and return.
  using MessageHandler = std::function<void(const std::string& topic, std::string payload)>;
  void subscribe_also(std::vector<std::string> topics, MessageHandler handler);
  // What the birth and heartbeat say of fleet bundles from now on (docs/fleet.md).
  void set_fleet_report(const FleetReport& report);

  // Connects in the background (with retries) and starts publishing.
  void start();
  // Stops publishing and disconnects; events not yet confirmed stay in the backlog.
  void stop();

  // Remote commands (docs/fleet.md, "Remote commands"); thread-safe, acted on by the publisher.
  void rebirth();  // publishes its birth again
  void flush();    // a partial batch goes now rather than after batch_max_delay
  // Sends the spool again from `seq` (from its oldest event when that is later); returns the seq
  // it resends from, 0 when it holds nothing from there or releases on the broker's ack.
  std::uint64_t resend_from(std::uint64_t seq);
  // Publishes `payload` on `topic` (QoS 1, not retained) once connected.
  void publish_message(std::string topic, std::string payload);

  // Thread-safe. Checks the event against the catalogue, then stores it.
  // observed_at_ms 0 means "now".
  SubmitResult submit(IndicatorEvent event);

  // Waits until the backlog is empty: every accepted event was confirmed by the aggregator
  // (DeliveryConfirmMode::Aggregator) or acknowledged by the broker (Broker).
  bool wait_until_drained(std::chrono::milliseconds timeout);
  bool wait_until_connected(std::chrono::milliseconds timeout);

  AgentStats stats() const;
  // The heartbeat's self-metrics, as published.
  AgentMetrics metrics() const;
  // The ids of the aggregator keys whose confirmations it obeys (empty: not enrolled), as its
  // heartbeat reports them (docs/security.md, "The aggregator's key").
  std::vector<std::string> aggregator_key_ids() const;
  const AgentConfig& config() const;
  // The topics this agent publishes on.
  std::string events_topic() const;
  std::string state_topic() const;
  std::string confirm_topic() const;  // where the aggregator confirms (subscribed in Aggregator mode)

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The random-free part of validation, usable without an Agent: empty when ok. With `post`,
// also whether that post may report the indicator (a ministry figure comes from the ministry).
std::string validate_event(const IndicatorCatalogue& catalogue, const IndicatorEvent& event,
                           const Post* post = nullptr);

}  // namespace postwatch::agent
