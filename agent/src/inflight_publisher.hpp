// The agent's main and urgent lanes on the wire: events read from the spool in batches (one
// catalogue version each, halved to fit a message, compressed as uplink.compression says,
// held back by uplink.max_kbit_s) and published QoS 1 into a window of max_inflight_batches
// awaiting their PUBACKs. The main lane's cursor is the next seq to send; a confirmation's
// resend request, or a new connection, moves it back.
//
// On the publisher thread only (Agent::Impl::run), except where said; it takes the shared
// state's lock itself.
#pragma once

#include "agent_shared.hpp"
#include "broker_connection.hpp"

#include "postwatch/agent/agent_config.hpp"
#include "postwatch/agent/agent_identity.hpp"
#include "postwatch/agent/uplink_budget.hpp"

#include "postwatch/batch_packing.hpp"
#include "postwatch/wire_codec.hpp"

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string_view>
#include <vector>

namespace postwatch::agent {

class InflightPublisher {
 public:
  InflightPublisher(const AgentConfig& config, const IndicatorCatalogue& catalogue, const std::string& topic,
                    AgentShared& shared, BrokerConnection& connection, const AgentIdentity& identity);

  // Caller holds shared.mu. A new connection: everything unconfirmed is sent again (the
  // aggregator drops duplicates), from the spool's first seq, which it returns.
  std::uint64_t restart_from_spool_locked();
  // A lost connection: the in-flight batches' PUBACKs no longer matter.
  void drop_inflight();
  // Releases what the aggregator confirmed and acts on a resend request (shared.confirms).
  void apply_confirmations();
  // The urgent lane's batches, ahead of the main lane's cursor.
  void send_urgent();
  // Fills the in-flight window with the main lane's batches.
  void fill_window();
  // Waits (briefly) for the oldest batch's PUBACK, and counts or releases it.
  void await_oldest_ack();
  bool idle() const { return inflight_.empty(); }
  std::uint64_t cursor() const { return cursor_; }

  // A message of `payload` bytes went out on `topic` (births, heartbeats, command results too).
  void spent_uplink(std::string_view topic, std::size_t payload, int qos);
  // The uplink's rate since the last call, for the heartbeat.
  void measure_uplink_rate();
  // Any thread: what went out, for metrics().
  std::uint64_t uplink_sent() const { return uplink_sent_; }
  std::uint64_t uplink_rate() const { return uplink_rate_; }
  // Paho's thread: the dictionary the aggregator unpacks with, from a verified confirmation.
  void aggregator_dictionary(std::uint32_t id) { aggregator_dictionary_ = id; }

 private:
  struct InflightBatch {
    mqtt::delivery_token_ptr token;  // null: the main lane passed seqs the urgent lane had sent, nothing to wait for
    std::uint64_t last_seq = 0;      // main lane: the cursor moves past it
    std::size_t count = 0;
    std::vector<IndicatorEvent> urgent;  // an urgent batch's events (last_seq unused)
  };
  // The longest the send loop waits in one go for the uplink cap.
  static constexpr std::chrono::milliseconds kUplinkWaitSlice{250};
  // Events per urgent batch: a handful arrive at once, and each batch is small enough to jump a
  // thin link's queue quickly.
  static constexpr std::size_t kMaxUrgentBatch = 64;

  // Reads the next main-lane batch into batch_.events; the last seq it covers (0: none ready).
  std::uint64_t read_next_batch();
  std::vector<std::uint8_t> compress(std::vector<std::uint8_t> plain);
  void clear_inflight_locked();
  void clear_inflight();
  const SigningKey* signing_key() const { return identity_.signer(); }

  const AgentConfig& config_;
  const std::string topic_;
  AgentShared& shared_;
  BrokerConnection& connection_;
  const AgentIdentity& identity_;
  std::deque<InflightBatch> inflight_;
  std::uint64_t cursor_ = 0;
  EventBatch batch_;
  std::vector<IndicatorEvent> events_;  // read from the spool, reused
  // uplink.compression. Null: batches go plain.
  std::unique_ptr<BatchPacker> packer_;       // zstd without a dictionary
  std::unique_ptr<BatchPacker> dict_packer_;  // with the catalogue's (zstd-dictionary only)
  // The dictionary the aggregator unpacks with, from its last verified confirmation (0: none
  // named yet). The dictionary is used only while it is ours: before that, zstd without it.
  std::atomic<std::uint32_t> aggregator_dictionary_{0};
  std::uint32_t dictionary_noted_ = 0;  // the last aggregator dictionary logged about
  // uplink.max_kbit_s; what it sent, for metrics() on any thread.
  UplinkBudget uplink_;
  std::atomic<std::uint64_t> uplink_sent_{0}, uplink_rate_{0};
};

}  // namespace postwatch::agent
