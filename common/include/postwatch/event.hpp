// The project's own event types; the FlatBuffers code stays behind wire_codec.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace postwatch {

enum class ValueKind : std::uint8_t { Level = 0, Count = 1, Gauge = 2, Boolean = 3, Share = 4, Text = 5 };

std::string_view to_string(ValueKind kind);
// Returns false when `name` is not a kind ("level", "count", ...).
bool parse_value_kind(std::string_view name, ValueKind& out);

struct IndicatorEvent {
  std::uint64_t seq = 0;
  std::int64_t observed_at_ms = 0;
  std::string indicator;
  ValueKind kind = ValueKind::Level;
  double number = 0;
  std::string text;
  std::string note;
  std::vector<std::pair<std::string, std::string>> tags;
  // The catalogue's catalogue_version it was validated against (0: not said), kept in the
  // spool so a batch names the version of its events, not the one the agent runs when it sends.
  std::uint32_t catalogue_version = 0;
};

// Decoded payloads say who signed them and where the signature sits (postwatch/signing.hpp,
// verify_payload); signature_offset 0: unsigned.
struct EventBatch {
  std::string agent_id;
  std::string post_id;
  std::int64_t sent_at_ms = 0;
  std::vector<IndicatorEvent> events;
  std::uint32_t clock_epoch = 0;  // clock jumps the agent has seen since it started
  std::string key_id{};
  std::size_t signature_offset = 0;
  bool urgent = false;                  // sent on the urgent lane, ahead of the main one (BatchLane)
  std::uint32_t catalogue_version = 0;  // that its events were validated against (0: not said)
};

// Non-owning view of one event inside a received buffer: the aggregator's hot
// path reads these without copying strings.
struct EventView {
  std::uint64_t seq = 0;
  std::int64_t observed_at_ms = 0;
  std::string_view indicator;
  ValueKind kind = ValueKind::Level;
  double number = 0;
  std::string_view text;
  std::string_view note;
};

struct BatchView {
  std::string_view agent_id;
  std::string_view post_id;
  std::int64_t sent_at_ms = 0;
  std::vector<EventView> events;
  std::uint32_t clock_epoch = 0;
  std::string_view key_id{};
  std::size_t signature_offset = 0;
  bool urgent = false;
  std::uint32_t catalogue_version = 0;
};

// Birth, death (last will) and heartbeat of one agent (schemas/postwatch_agent_state.fbs).
struct AgentMetrics {
  std::uint64_t spool_events = 0, spool_bytes = 0;
  std::int64_t oldest_unsent_age_ms = 0;
  std::uint64_t events_accepted = 0, events_sent = 0, events_dropped = 0, reconnects = 0;
  std::uint64_t rss_bytes = 0, uptime_s = 0;
  std::uint64_t sent_through_seq = 0;       // highest seq the broker acknowledged
  std::uint64_t confirmed_through_seq = 0;  // highest aggregator confirmation applied (0: broker mode)
  std::uint64_t held_from_seq = 0;          // oldest seq still held, awaiting confirmation (0: broker mode)
  // MQTT bytes sent since start, the rate since the previous heartbeat, the cap (0: none).
  std::uint64_t uplink_bytes = 0, uplink_bytes_per_s = 0, uplink_cap_bytes_per_s = 0;
};

// The aggregator's answer to one agent (schemas/postwatch_delivery.fbs).
struct DeliveryConfirm {
  std::string agent_id;
  std::string post_id;
  std::uint64_t through_seq = 0;  // every seq <= this is durable at the aggregator
  std::int64_t at_ms = 0;
  std::uint64_t resend_from = 0;  // non-zero: a resend request from this seq
  std::string key_id{};
  std::size_t signature_offset = 0;
  std::vector<std::uint8_t> next_key{};        // 32 bytes: the aggregator's next key, to trust
  std::vector<std::string> retired_key_ids{};  // aggregator keys to stop trusting
  std::uint32_t batch_dictionary = 0;          // the dictionary the aggregator unpacks with (0: none)
};

enum class ClockSync : std::uint8_t { Unknown = 0, Synchronised = 1, Unsynchronised = 2 };
std::string_view to_string(ClockSync sync);  // "unknown", "synchronised", "unsynchronised"

// Fleet bundles on the agent (docs/fleet.md, "Reporting").
struct FleetReport {
  enum class Outcome : std::uint8_t { None, Applied, Refused, RolledBack, OnTrial };
  std::uint64_t config_bundle = 0;     // 0: the board's own config
  std::uint64_t catalogue_bundle = 0;  // 0: the installed catalogue
  std::uint32_t catalogue_version = 0;
  Outcome last_outcome = Outcome::None;
  std::uint64_t last_version = 0;
  std::string last_reason;
  std::uint32_t applied = 0, rolled_back = 0, refused = 0;
  bool operator==(const FleetReport&) const = default;
};

struct AgentState {
  std::string agent_id;
  std::string post_id;
  bool online = true;
  std::int64_t at_ms = 0;
  std::string agent_version;
  std::string config_hash;
  std::uint64_t first_unacked_seq = 0;
  std::uint32_t heartbeat_interval_s = 0;
  bool has_metrics = false;
  AgentMetrics metrics;
  bool awaits_confirmation = false;  // keeps events until the aggregator confirms them
  ClockSync clock_sync = ClockSync::Unknown;
  std::uint32_t clock_jumps = 0;           // wall-clock jumps seen since the agent started
  std::int64_t last_clock_jump_ms = 0;     // size of the last one, + forwards
  std::int64_t last_clock_jump_at_ms = 0;  // when, agent clock after the jump
  // Sends and leaves (emit): its death is not its post going quiet; heartbeat_interval_s is
  // then how often it promises to send again (0: none).
  bool one_shot = false;
  std::string key_id{};
  std::size_t signature_offset = 0;
  std::vector<std::string> aggregator_key_ids{};  // the aggregator keys it trusts
  bool has_fleet = false;                         // an agent that takes fleet bundles
  FleetReport fleet{};
};

}  // namespace postwatch
