// The store keeps the events of one handed-over batch (one agent's message) as one
// record: a compact body plus the few fields queries select on. Writing a batch then
// costs one row, not one row per event (docs/aggregator.md, "The store").
#pragma once

#include "store/event_sink.hpp"

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace postwatch::aggregator {

struct StoredEventRow;

// What a record says about its events without decoding them.
struct StoredBatchSummary {
  std::uint64_t first_seq = 0, last_seq = 0;  // of the first event; the highest
  std::uint32_t count = 0;
  std::int64_t min_observed_ms = 0, max_observed_ms = 0;
  std::int64_t received_at_ms = 0;  // of the first event; the others are deltas from it
};

// Body format 1: a version byte, then per event
//   zigzag varint  seq - previous seq (the first: - summary.first_seq)
//   varint         indicator code (the store's stable number for an indicator id);
//                  0 = a refused unknown indicator, its name follows as varint length + bytes
//   zigzag varint  observed_at_ms - previous (the first: - summary.received_at_ms)
//   zigzag varint  received_at_ms - summary.received_at_ms
//   zigzag varint  clock_correction_ms
//   u8             kind (bits 0-2), late (3), refused (4-5), has text (6), number is an integer (7)
//   number         zigzag varint when an integer, else 8 bytes little-endian IEEE double
//   text           varint length + bytes, when it has text
inline constexpr std::uint8_t kStoredBatchFormat = 1;

// Appends `events` (one agent's) as a body; `code_of` maps a catalogue indicator index
// to its stable code.
StoredBatchSummary encode_stored_batch(std::span<const PersistedEvent> events,
                                       const std::vector<std::uint32_t>& code_of, std::string& body);

// Calls `fn` for every event of a body, with `row` filled in except post and agent (the
// caller's). `name_of` maps a code to an indicator id. False when the body is malformed:
// the events before the fault have been passed on.
bool decode_stored_batch(std::string_view body, const StoredBatchSummary& summary,
                         const std::vector<std::string>& name_of, StoredEventRow& row,
                         const std::function<void(const StoredEventRow&)>& fn);

}  // namespace postwatch::aggregator
