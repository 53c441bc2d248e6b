// Subscribes to the agents' topics and hands every message to the io_context:
// paho calls back on its own threads, the state is only touched on the io_context.
#pragma once

#include "ingest/delivery_gate.hpp"
#include "postwatch/verify_key.hpp"

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace spdlog {
class logger;
}

namespace postwatch::aggregator {

struct MqttMessage {
  std::string topic;
  std::string payload;
};

// How the aggregator logs in to the broker (docs/operations.md): its own user, and TLS
// with CA verification (and an optional client certificate) for ssl:// URIs.
struct BrokerLogin {
  std::string username, password;
  std::string ca_file, cert_file, key_file;  // ca empty: OpenSSL's default paths
};

// `--broker` may list several URIs, comma separated (the MQTT listeners of a NATS cluster's
// nodes): the first is tried first, and on a lost connection Paho tries each in turn.
std::vector<std::string> split_broker_uris(const std::string& list);

// What Paho's delivery thread worked out for a message before handing it to the io thread,
// so the io thread need not (docs/aggregator.md, "Signatures off the io thread").
struct Prechecked {
  // The agent key whose signature verified over the payload; null: not checked, unsigned, or
  // not verified (the io thread then checks it itself).
  std::shared_ptr<const VerifyKey> signed_by;
  // A compressed batch unpacked here: the plain EventBatch, and the size it had on the wire.
  // Null: not compressed, or it did not unpack (the io thread then refuses it with the reason).
  std::shared_ptr<const std::vector<std::uint8_t>> unpacked;
  std::size_t packed_bytes = 0;
};

class MqttIngest {
 public:
  using Handler = std::function<void(const std::string& topic, const std::string& payload, const Prechecked& pre)>;
  // On Paho's delivery thread, for each message let through the gate; must be thread-safe.
  using Precheck = std::function<Prechecked(const std::string& topic, const std::string& payload)>;

  MqttIngest(boost::asio::io_context& io, std::string broker_uri, std::string client_id,
             std::vector<std::string> filters, std::shared_ptr<spdlog::logger> log, Handler on_message,
             IngestFlowControl flow = {});
  ~MqttIngest();

  // Before start().
  void set_login(BrokerLogin login);
  // Before start(): a retained QoS 1 last will the broker publishes if we vanish.
  void set_will(std::string topic, std::string payload);
  // Before start(): runs on the io_context after every (re)connect, once subscribed.
  void set_on_subscribed(std::function<void()> fn);
  // Before start(): work done on Paho's thread, in parallel with the io thread's.
  void set_precheck(Precheck fn);

  // Connects in the background, retrying until stop(); subscribes on every (re)connect.
  void start();
  // Adds and removes filters at run time (on the io_context). `granted` runs on the
  // io_context once the broker granted the added filters (true) or refused them (false);
  // at once if nothing was added. Reconnects subscribe the current set.
  void change_filters(const std::vector<std::string>& add, const std::vector<std::string>& remove,
                      std::function<void(bool)> granted);
  void stop();
  bool connected() const;
  // Connected and subscribed to every filter: messages published from now on reach us.
  bool subscribed() const;
  // Whether a message arriving now may have waited in the broker: within kBacklogSettle of a
  // (re)connect to a session the broker kept for us. Thread-safe.
  bool may_be_backlog(std::int64_t now_ms) const;
  static constexpr std::int64_t kBacklogSettleMs = 60'000;
  IngestFlowStats flow() const;
  // Hands one QoS 1 message to Paho (MqttOutbox is the only caller): `on_published(id, ok)`
  // runs on the io_context once the broker acknowledged it or Paho gave up on it. False when
  // Paho refused it at once (not connected); on_published is not called then.
  bool publish_tracked(std::uint64_t id, const std::string& topic, const std::string& payload, bool retained);
  // Before start(): where publish_tracked's outcomes go.
  void set_on_published(std::function<void(std::uint64_t id, bool ok)> fn);
  // Publishes one QoS 1 message and waits up to `timeout` for the broker's PUBACK (shutdown only).
  bool publish_and_wait(const std::string& topic, const std::string& payload, bool retained,
                        std::chrono::milliseconds timeout);

  // Paho's limits, set deliberately (MqttOutbox keeps its window below both): how many QoS 1
  // messages may await their PUBACK, and how many may wait in Paho's own queue before it
  // answers -12 ("No more messages can be buffered").
  static constexpr int kMaxInflight = 2048;
  static constexpr int kMaxBuffered = 2048;
  // How soon the io thread tries a Paho call again that the closed delivery gate put off.
  static constexpr std::chrono::milliseconds kGateRetry{20};
  // A connection lost within kQuickLoss of connecting, kQuickLossesBeforeRebuild times in a
  // row, makes a fresh Paho client (mqtt_ingest_connection.cpp, rebuild()): at most kMaxRebuilds times,
  // kRebuildSpacing apart.
  static constexpr std::chrono::milliseconds kQuickLoss{1000};
  static constexpr int kQuickLossesBeforeRebuild = 3;
  static constexpr int kMaxRebuilds = 8;
  static constexpr std::chrono::milliseconds kRebuildSpacing{30'000};
  // The precheck runs on Paho's thread once this many messages wait for the io thread.
  static constexpr std::size_t kPrecheckFromQueued = 16;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace postwatch::aggregator
