// The tests' one MQTT client: connects to a broker (optionally with a login and TLS), keeps every
// message on its subscriptions, decodes event batches and agent states with the wire codec, and
// publishes raw or retained payloads. Waits are on a condition variable with a deadline.
#pragma once

#include "postwatch/wire_codec.hpp"

#include <mqtt/async_client.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace postwatch::test {

// TLS for the probe's connection: the CA it trusts and, for mutual TLS, its own certificate.
struct ProbeTls {
  explicit ProbeTls(std::filesystem::path ca_file, std::filesystem::path cert_file = {},
                    std::filesystem::path key_file = {})
      : ca(std::move(ca_file)), cert(std::move(cert_file)), key(std::move(key_file)) {}
  std::filesystem::path ca;
  std::filesystem::path cert, key;  // empty: no client certificate
  bool verify_host = true;          // check the server certificate names the host
};

// How the probe connects and what it subscribes to, built as ProbeOptions().login(...).subscribe(...).
struct ProbeOptions {
  std::string user, password;  // empty: no login
  std::optional<ProbeTls> tls;
  bool connect_now = true;  // false: the test calls connect() itself (to see a refusal)
  bool mqtt_3_1_1 = false;  // speak MQTT 3.1.1 only, as the agent does
  std::chrono::seconds connect_timeout{10};
  std::vector<std::pair<std::string, int>> subscriptions;  // topic filter, QoS: subscribed on connect

  ProbeOptions& login(std::string u, std::string p) {
    user = std::move(u);
    password = std::move(p);
    return *this;
  }
  ProbeOptions& over_tls(ProbeTls t) {
    tls = std::move(t);
    return *this;
  }
  ProbeOptions& subscribe(std::string filter, int qos = 1) {
    subscriptions.emplace_back(std::move(filter), qos);
    return *this;
  }
  ProbeOptions& as_agent_speaks() {  // MQTT 3.1.1
    mqtt_3_1_1 = true;
    return *this;
  }
  ProbeOptions& connect_later() {
    connect_now = false;
    return *this;
  }
  ProbeOptions& timeout(std::chrono::seconds t) {
    connect_timeout = t;
    return *this;
  }
};

struct ProbeMessage {
  std::string topic;
  std::string payload;
  bool retained = false;
};

class MqttProbe {
 public:
  MqttProbe(const std::string& uri, const std::string& client_id, ProbeOptions options = {});
  // Disconnects, bounded: a client the broker already dropped may never see its disconnect complete.
  ~MqttProbe();
  MqttProbe(const MqttProbe&) = delete;
  MqttProbe& operator=(const MqttProbe&) = delete;

  // Throws mqtt::exception when the broker refuses the connection.
  void connect();
  // Throws when the broker refuses the subscription.
  void subscribe(const std::string& topic_filter, int qos = 1);
  // True when the broker granted the subscription (SUBACK below 0x80).
  bool try_subscribe(const std::string& topic_filter, int qos = 1);
  void publish(const std::string& topic, const std::string& payload, int qos = 1, bool retained = false);
  void publish(const std::string& topic, const std::vector<std::uint8_t>& payload, int qos = 1, bool retained = false);
  void publish_retained(const std::string& topic, const std::string& payload) { publish(topic, payload, 1, true); }
  // One event of `indicator` = `value` observed now at `post`, in a batch as `agent` would send it,
  // with that agent's next seq (counted by this probe).
  void publish_event(const std::string& region, const std::string& post, const std::string& indicator, double value,
                     ValueKind kind = ValueKind::Level, const std::string& agent = "t1");

  // Everything received so far, oldest first.
  std::vector<ProbeMessage> messages();
  // The payloads seen on exactly `topic`, oldest first.
  std::vector<std::string> payloads_on(const std::string& topic);
  bool got(const std::string& topic, const std::string& payload);
  bool got_retained(const std::string& topic, const std::string& payload);
  // Every event of every batch received (on topics ending "/events"), in arrival order, repeats
  // included; `topic` non-empty keeps that topic's only.
  std::vector<IndicatorEvent> events(const std::string& topic = "");
  // Each seq once (its last copy), in seq order: what a receiver that drops duplicates keeps.
  std::vector<IndicatorEvent> distinct_events(const std::string& topic = "");
  // How many times each seq arrived.
  std::map<std::uint64_t, int> seq_counts(const std::string& topic = "");
  // The last agent state (birth, heartbeat or will) received on `topic`.
  std::optional<AgentState> last_state(const std::string& topic);

  // Waits until `pred` holds over everything received, or the deadline passes.
  bool wait_for(const std::function<bool(const std::vector<ProbeMessage>&)>& pred, std::chrono::milliseconds timeout);
  // Waits until `pred` holds over every decoded event, or the deadline passes.
  bool wait_for_events(const std::function<bool(const std::vector<IndicatorEvent>&)>& pred,
                       std::chrono::milliseconds timeout);

  bool connected() { return client_.is_connected(); }
  // For what the probe does not wrap (a will, a second session's tricks).
  mqtt::async_client& raw() { return client_; }

  // A batch's events, or nullopt when `payload` is not a batch the codec reads.
  static std::optional<EventBatch> decode_events(const std::string& payload);
  static std::optional<AgentState> decode_state(const std::string& payload);

 private:
  void on_message(mqtt::const_message_ptr m);

  ProbeOptions options_;
  std::mutex mu_;
  std::condition_variable changed_;
  std::vector<ProbeMessage> messages_;
  std::vector<std::pair<std::string, IndicatorEvent>> events_;  // topic, event
  std::map<std::string, std::uint64_t> next_seq_;               // post/agent -> last seq published
  // Last: destroyed first, so that no callback of its reaches the members above once they are gone.
  mqtt::async_client client_;
};

}  // namespace postwatch::test
