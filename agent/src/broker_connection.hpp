// The agent's MQTT connection: Paho's async client for one broker at a time (broker_uri, then
// its fallbacks in turn), the connect options (login, proxy, TLS or mTLS, the last will), and,
// when a connect fails, why in plain words (broker_route, tls_diagnostics).
//
// The publisher thread owns it (Agent::Impl::run): only that thread connects, publishes and
// replaces the client. Paho calls the two handlers on its own thread.
#pragma once

#include "postwatch/agent/agent_config.hpp"

#include <mqtt/async_client.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace spdlog {
class logger;
}

namespace postwatch::agent {

class BrokerConnection {
 public:
  using MessageHandler = std::function<void(const mqtt::const_message_ptr&)>;
  using LostHandler = std::function<void(const std::string& cause)>;
  static constexpr std::chrono::seconds kConnectTimeout{5};

  // Reads config.password_file. Throws ConfigError when uplink.proxy does not parse.
  BrokerConnection(const AgentConfig& config, std::shared_ptr<spdlog::logger> log, MessageHandler on_message,
                   LostHandler on_lost);
  ~BrokerConnection();
  BrokerConnection(const BrokerConnection&) = delete;
  BrokerConnection& operator=(const BrokerConnection&) = delete;

  // A client for the current broker (at start, and after a stop).
  void open();

  // One connect, its last will `will_payload` (retained, QoS 1, on `will_topic`). Empty when
  // connected; else what failed and why, for the log.
  std::string connect(const std::string& will_topic, const std::string& will_payload);
  // A fresh client for the current broker: a lost connection's client keeps the publishes it
  // had not written and writes them first after a reconnect, ahead of the resend.
  void replace_client();
  // After a failed connect, with fallbacks: the next broker, on a fresh client (a client is
  // bound to its server). True when that one was not yet tried since the last success.
  bool next_broker();

  bool is_connected() const { return client_ && client_->is_connected(); }
  const std::string& broker() const { return brokers_[broker_at_]; }
  const std::string& client_id() const { return client_id_; }

  // Throw mqtt::exception as Paho does.
  mqtt::delivery_token_ptr publish(const std::string& topic, const void* payload, std::size_t size, int qos,
                                   bool retained);
  // QoS 0 subscriptions; false when the broker did not answer in time.
  bool subscribe(const std::vector<std::string>& topics);
  // Ends the connection (the broker keeps its last will); the next connect uses a fresh client.
  void disconnect();
  // A clean stop: `death_payload` retained on `state_topic` (the broker sends the last will only
  // on a lost connection), a bounded disconnect, then every client is closed.
  void close(const std::string& state_topic, const std::string& death_payload);

 private:
  mqtt::connect_options connect_options(const std::string& will_topic, const std::string& will_payload);
  std::string explain_connect_failure(const mqtt::exception& e);

  const AgentConfig& config_;
  std::shared_ptr<spdlog::logger> log_;
  MessageHandler on_message_;
  LostHandler on_lost_;
  std::string client_id_;
  std::string password_;  // from password_file; never logged
  std::unique_ptr<mqtt::async_client> client_;
  // Retired clients (stuck connects, lost connections), destroyed later: see replace_client().
  std::vector<std::unique_ptr<mqtt::async_client>> stale_clients_;
  // broker_uri and the fallbacks: a failed connect moves to the next; a round that tried each
  // once without success backs off as one broker does.
  std::vector<std::string> brokers_;
  std::size_t broker_at_ = 0, failures_in_round_ = 0;
  std::mutex tls_mu_;
  std::string tls_error_;  // the last OpenSSL error Paho reported, for the next connect failure
};

}  // namespace postwatch::agent
