// Agent::Impl, what is behind Agent (agent.hpp): the state its threads share (AgentShared), the
// parts made in its constructor, and the publisher thread. agent.cpp makes it and holds Agent's
// member functions; agent_send_loop.cpp is the publisher thread's loop and its steps.
#pragma once

#include "agent_presence.hpp"
#include "agent_shared.hpp"
#include "broker_connection.hpp"
#include "confirm_listener.hpp"
#include "inflight_publisher.hpp"

#include "postwatch/agent/agent.hpp"
#include "postwatch/agent/agent_identity.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace postwatch::agent {

struct Agent::Impl : AgentShared {
  Impl(AgentConfig c, std::shared_ptr<const IndicatorCatalogue> cat, std::unique_ptr<EventBacklog> b,
       std::shared_ptr<spdlog::logger> l);

  AgentConfig config;
  std::shared_ptr<const IndicatorCatalogue> catalogue;
  std::string region;
  std::string topic;
  std::string state_topic;
  std::string heartbeat_topic;
  std::string confirm_topic;
  std::vector<std::string> extra_topics;  // set before start()
  Agent::MessageHandler on_extra;
  std::uint64_t reported_drops = 0;  // drops already reported as an agent_events_dropped event

  const Post* post_entry = nullptr;  // in *catalogue
  // Enrolled (docs/security.md): what it publishes is signed with its key, and only
  // confirmations signed by one of the aggregator's keys are obeyed.
  AgentIdentity identity;
  // Made in the constructor, in this order; each refers to the ones before.
  std::optional<BrokerConnection> connection;  // owned by the publisher thread
  std::optional<InflightPublisher> sender;     // the publisher thread's, but for its uplink counters
  std::optional<AgentPresence> presence;       // birth, heartbeat, death
  std::optional<ConfirmListener> confirm_listener;
  std::thread publisher;

  // Paho's thread: a message on the confirm topic or one of the extra topics.
  void on_message(const mqtt::const_message_ptr& msg);

  // The publisher thread (agent_send_loop.cpp): upkeep, the connection, the control messages,
  // then the two lanes.
  void run();

  // What the send loop schedules; reset at each start().
  struct SendLoop {
    std::mt19937_64 rng{std::random_device{}()};
    std::chrono::milliseconds backoff{250};
    std::chrono::steady_clock::time_point next_maintenance = std::chrono::steady_clock::now();
    std::chrono::steady_clock::time_point next_connect = std::chrono::steady_clock::now();
    std::chrono::steady_clock::time_point next_heartbeat;
    // A refused confirm subscription (a busy broker's SUBACK failure) is tried again while
    // connected, with backoff: without it nothing would leave the spool until a reconnect.
    bool subscribed = false;
    std::chrono::milliseconds subscribe_backoff{1000};
    std::chrono::steady_clock::time_point subscribe_retry_at{};
  };
  static constexpr std::chrono::milliseconds kMaxConnectBackoff{30000};
  static constexpr std::chrono::milliseconds kMaxSubscribeBackoff{30000};

  // The steps of run(), in agent_send_loop.cpp.
  bool stop_requested() const;
  void upkeep(std::chrono::steady_clock::time_point now);
  void maintain();
  void submit_internal(IndicatorEvent e);
  void follow_confirmations(std::chrono::steady_clock::time_point now);
  bool reconnect(std::chrono::steady_clock::time_point now);
  void back_off_connecting();
  void start_over_from_spool();
  void resubscribe_if_due();
  void publish_control_messages();
  void publish_heartbeat_now();
  void wait_for_work();
  bool confirmation_pending_locked() const;
  bool subscribe_confirmations();
  bool subscribes() const;
  std::string subscribed_what() const;
  void publish_outgoing();
  bool take_rebirth();
  void on_connection_lost(const std::string& cause);  // Paho's thread
  void reconnect_for_new_key();
  bool take_connection_lost();
  bool try_connect();
  bool report_clock_jump();

  SendLoop loop;  // the publisher thread's
  std::uint64_t maintenance_ticks = 0;
  bool connected_once = false;
};

}  // namespace postwatch::agent
