// Verify → check → dedupe → apply: turns one MQTT message into updates of the
// IndicatorState. Pure and single-threaded (it runs on the aggregator's
// io_context), so it can be tested and benchmarked without a broker.
#pragma once

#include "ingest/agent_table.hpp"
#include "ingest/seq_window.hpp"
#include "postwatch/batch_packing.hpp"
#include "postwatch/catalogue.hpp"
#include "postwatch/wire_codec.hpp"
#include "rollup/indicator_state.hpp"
#include "store/event_sink.hpp"
#include "trust/agent_key_registry.hpp"

#include <array>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>

namespace spdlog {
class logger;
}

namespace postwatch::aggregator {

struct IngestCounters {
  std::uint64_t batches_accepted = 0;
  std::array<std::uint64_t, decode_error_count> batches_undecodable{};  // by DecodeError
  std::uint64_t batches_bad_topic = 0;                                  // not an agent events topic
  std::uint64_t batches_topic_mismatch = 0;                             // payload's post/agent differ from the topic's
  std::uint64_t batches_unknown_post = 0;
  std::uint64_t events_accepted = 0;
  std::uint64_t events_duplicate = 0;
  std::uint64_t events_unknown_indicator = 0;
  std::uint64_t events_bad_value = 0;
  std::uint64_t events_gaps = 0;            // seqs never received, given up on
  std::uint64_t events_reordered = 0;       // new, but below the agent's highest seq so far
  std::uint64_t events_urgent = 0;          // applied from batches on the agents' urgent lane
  std::uint64_t events_late = 0;            // observed before now - allowed lateness: applied only if newest
  std::uint64_t events_future = 0;          // observed after now + max clock skew: stored, not applied
  std::uint64_t events_time_corrected = 0;  // observed_at corrected by the agent's measured clock offset
  std::uint64_t batches_clock_skew = 0;     // sent_at differs from our clock by more than max skew
  std::uint64_t batches_signed = 0;         // accepted with a verified signature
  // Refused by their signature, by SignatureVerdict (unsigned_refused, bad_signature,
  // unknown_key, revoked_key): nothing of them was applied, stored or counted as seen.
  std::array<std::uint64_t, kSignatureRefusals> batches_refused_signature{};
  // Compressed batches (PackedBatch) that unpacked, and their bytes on the wire and unpacked.
  std::uint64_t batches_compressed = 0;
  std::uint64_t compressed_bytes_received = 0;
  std::uint64_t compressed_bytes_unpacked = 0;

  std::uint64_t batches_rejected() const;
};

struct IngestPolicy {
  std::int64_t allowed_lateness_ms = 10LL * 60 * 1000;
  std::int64_t max_clock_skew_ms = 5LL * 60 * 1000;  // an event further ahead, after correction, is "future"
  ClockPolicy clock;
};

// One agent's dedupe window and counters, as handed between aggregator instances.
struct AgentTrackSnapshot {
  std::string agent;
  SeqWindow::Snapshot seqs;
  std::int64_t clock_skew_ms = 0;
  std::int64_t last_event_ms = 0;
  std::uint64_t events = 0;
  std::uint64_t reordered = 0;
};

class BatchIngest {
 public:
  BatchIngest(const IndicatorCatalogue& catalogue, AgentTable& agents, IndicatorState& state,
              std::shared_ptr<spdlog::logger> log, IngestPolicy policy = {}, EventSink* sink = nullptr);

  // Re-applies one stored event at start-up: same dedupe and state as when it arrived.
  // `e.observed_at_ms` is the stored (corrected) time.
  void replay(std::string_view post, std::string_view agent, const EventView& e, std::int64_t received_at_ms,
              std::int64_t clock_correction_ms = 0);

  // `payload` is an EventBatch or a PackedBatch (batch_packing.hpp), which it unpacks first.
  // Returns how many events of the message were applied as new. `prompt`: the message cannot
  // have waited long in the broker (see ClockOffset), so a slow clock it shows is believed.
  // `verified`: the agent key that already verified the payload's signature on another thread
  // (SignaturePrecheck); null: verify here.
  std::size_t on_message(std::string_view topic, std::span<const std::uint8_t> payload, std::int64_t now_ms,
                         bool prompt = true, const VerifyKey* verified = nullptr);

  // A post's agents, for another instance to take the post over (docs/scale-out.md).
  std::vector<AgentTrackSnapshot> export_agents(std::uint32_t post) const;
  // Replaces the post's agents' windows and counters with `agents`; agents of the post that
  // `agents` does not name start afresh.
  void import_agents(std::uint32_t post, const std::vector<AgentTrackSnapshot>& agents);

  // The agent no longer holds any seq <= `seq` (DeliveryConfirmer): its window stops
  // waiting for them.
  void settle(AgentRecord& agent, std::uint64_t seq);
  // The agent dropped every seq <= `seq` it had not been confirmed (its heartbeat says where
  // its spool starts): the unseen ones become gaps. Returns the gaps counted.
  std::uint64_t give_up(AgentRecord& agent, std::uint64_t seq);

  // A PackedBatch of `wire_bytes` that another thread unpacked to `plain_bytes` before handing
  // the plain batch to on_message (MqttIngest's precheck): counted as if unpacked here.
  void count_unpacked(std::size_t wire_bytes, std::size_t plain_bytes);
  // The dictionary of this ingest's catalogue, which compressed batches may use.
  const std::shared_ptr<const BatchDictionary>& dictionary() const { return dictionary_; }
  // Another catalogue's dictionary compressed batches may use (agents a rollout has not reached).
  void add_dictionary(std::shared_ptr<const BatchDictionary> d) { unpacker_.add_dictionary(std::move(d)); }

  const IngestCounters& counters() const { return counters_; }
  const AgentTable& agents() const { return agents_; }
  std::size_t agents_tracked() const { return tracked_; }  // agents whose events it has seen

  // Optional: called once per event a live message applied to the state (not on replay,
  // not for late events) with now - observed_at in ms; feeds the ingest latency metric.
  std::function<void(std::int64_t latency_ms)> on_applied_latency;
  // A batch whose payload names another post/agent than the topic it came on: the
  // broker authenticated the topic's owner, so that is who tried (see StatusBoard).
  std::function<void(std::string_view topic_post, std::string_view topic_agent, std::string_view claimed_post,
                     std::string_view claimed_agent)>
      on_topic_mismatch;
  // A batch refused by its signature (after the count and the log line).
  std::function<void(SignatureVerdict verdict, std::string_view topic_post, std::string_view agent)>
      on_signature_refused;
  // Before the first message: whose keys to verify batches against (docs/security.md). Null:
  // nothing is verified (tools and tests that feed ingest directly).
  void set_keys(const AgentKeyRegistry* keys) { keys_ = keys; }

 private:
  void reject(std::string_view topic, std::string_view why);
  // The agent's record, with its seq window started at `first_seq` if this is its first event.
  AgentRecord& track(std::uint32_t post, std::string_view agent, std::uint64_t first_seq);
  // Dedupe, check, apply and store one event (`e` with its corrected time); false when it
  // was not new, or new but refused (then stored with the reason). `ahead`: from the urgent lane.
  bool accept_event(AgentRecord& agent, const EventView& e, std::int64_t received_at_ms,
                    std::int64_t clock_correction_ms, std::string_view topic, bool ahead);
  // Updates the agent's clock estimate from one batch; returns the correction for its events.
  std::int64_t measure_clock(AgentRecord& agent, std::string_view topic, std::int64_t now_ms, bool prompt);

  const IndicatorCatalogue& catalogue_;
  IndicatorState& state_;
  std::shared_ptr<spdlog::logger> log_;
  IngestPolicy policy_;
  EventSink* sink_;
  std::vector<PersistedEvent> persist_buf_;
  IngestCounters counters_;
  BatchView batch_;  // reused so steady-state decoding does not allocate
  std::shared_ptr<const BatchDictionary> dictionary_;
  BatchUnpacker unpacker_;
  std::vector<std::uint8_t> unpacked_;  // reused, like batch_
  AgentTable& agents_;
  std::size_t tracked_ = 0;
  std::uint64_t rejections_logged_ = 0;
  std::uint64_t newer_catalogue_batches_ = 0;  // from agents ahead of our catalogue (logged, not refused)
  const AgentKeyRegistry* keys_ = nullptr;
};

}  // namespace postwatch::aggregator
