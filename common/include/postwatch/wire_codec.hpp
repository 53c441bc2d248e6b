// Encode, verify and decode the FlatBuffers wire contract (schemas/*.fbs).
#pragma once

#include "postwatch/event.hpp"
#include "postwatch/signing.hpp"

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace postwatch {

struct WireLimits {
  static constexpr std::size_t max_payload_bytes = std::size_t{1024} * 1024;
  static constexpr std::size_t max_events_per_batch = 10000;
  static constexpr std::size_t max_id_bytes = 64;
  static constexpr std::size_t max_text_bytes = 256;
  static constexpr std::size_t max_note_bytes = 1024;
  static constexpr std::size_t max_retired_keys = 8;   // DeliveryConfirm.retired_key_ids
  static constexpr std::size_t max_trusted_keys = 16;  // AgentState.aggregator_key_ids
  static constexpr std::uint16_t schema_version = 1;
};

// Why a payload was refused; each reason is its own counter in the aggregator.
enum class DecodeError : std::uint8_t {
  None = 0,
  Oversized,        // larger than max_payload_bytes
  WrongIdentifier,  // not an EventBatch (file identifier mismatch)
  Malformed,        // the FlatBuffers verifier refused it
  UnsupportedVersion,
  TooManyEvents,
  FieldTooLong,  // an id, text or note beyond its limit; a signature that is not 64 bytes
  BadValue,      // NaN/inf number or unknown kind
  // A PackedBatch (batch_packing.hpp) only:
  UnknownCodec,       // a codec this reader does not know
  UnknownDictionary,  // compressed with a dictionary this reader does not hold
  CorruptFrame,       // not one whole zstd frame of exactly the declared size
};
inline constexpr std::size_t decode_error_count = 11;
std::string_view to_string(DecodeError error);

// With a `signer`, the payload carries its key id and signature (docs/security.md).
std::vector<std::uint8_t> encode_batch(const EventBatch& batch, const SigningKey* signer = nullptr);

// The view decoder reads FlatBuffers scalars in place, so its `payload` must start 8-byte
// aligned, as any heap buffer does (a Paho message, a std::vector); an offset into a larger
// buffer may not be (misaligned reads are undefined, and fault on ARM: armhf gets SIGBUS). The
// owning decoders take any payload: they decode a misaligned one from an aligned copy.

// Verifies `payload` and fills `out` with views into it. `out` is reused across
// calls so steady-state decoding does not allocate.
DecodeError decode_batch(std::span<const std::uint8_t> payload, BatchView& out);

// Owning decode, for tests and tools.
DecodeError decode_batch(std::span<const std::uint8_t> payload, EventBatch& out);

std::vector<std::uint8_t> encode_agent_state(const AgentState& state, const SigningKey* signer = nullptr);
// WrongIdentifier / Malformed / FieldTooLong as for batches.
DecodeError decode_agent_state(std::span<const std::uint8_t> payload, AgentState& out);

std::vector<std::uint8_t> encode_delivery_confirm(const DeliveryConfirm& confirm, const SigningKey* signer = nullptr);
DecodeError decode_delivery_confirm(std::span<const std::uint8_t> payload, DeliveryConfirm& out);

}  // namespace postwatch
