// Compressed event batches (docs/wire-format.md, "PackedBatch (`PWZ1`)"): a PackedBatch
// envelope around one zstd frame that holds the EventBatch the agent would have sent plain,
// signature included. Packing happens after signing and unpacking before anything reads the
// batch, so every later check sees the plain bytes.
#pragma once

#include "postwatch/wire_codec.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

namespace postwatch {

class IndicatorCatalogue;

// What the agent does to a batch before it publishes it (`uplink.compression`).
enum class BatchCompression : std::uint8_t {
  None,            // a plain EventBatch: what every aggregator reads
  Zstd,            // zstd, no dictionary
  ZstdDictionary,  // zstd with the catalogue's dictionary: small batches shrink most
};
std::string_view to_string(BatchCompression c);
bool parse_batch_compression(std::string_view name, BatchCompression& out);

// A zstd raw-content dictionary derived from the catalogue: the encodings of a batch carrying
// every indicator at its baseline and of one event from each post, in the byte layout the
// agent's encoder produces. Both ends derive it from their own catalogue, so nothing extra is
// shipped; its id is a CRC of its bytes, so two catalogues that give different dictionaries
// never decode each other's batches wrongly (the reader refuses the id as unknown_dictionary).
class BatchDictionary {
 public:
  static std::shared_ptr<const BatchDictionary> for_catalogue(const IndicatorCatalogue& catalogue);
  ~BatchDictionary();
  BatchDictionary(const BatchDictionary&) = delete;
  BatchDictionary& operator=(const BatchDictionary&) = delete;

  std::uint32_t id() const { return id_; }  // never 0
  std::size_t size() const { return content_.size(); }

 private:
  friend class BatchPacker;
  friend class BatchUnpacker;
  explicit BatchDictionary(std::vector<std::uint8_t> content);
  std::vector<std::uint8_t> content_;
  std::uint32_t id_ = 0;
  struct Tables;  // the zstd dictionaries, prepared once (read-only: shared across threads)
  std::unique_ptr<Tables> tables_;
};

// Compresses plain EventBatch payloads. One per thread (it keeps a zstd context).
class BatchPacker {
 public:
  // `dictionary` null: without one. `level`: zstd's, 1-19.
  explicit BatchPacker(std::shared_ptr<const BatchDictionary> dictionary = nullptr, int level = 3);
  ~BatchPacker();
  BatchPacker(const BatchPacker&) = delete;
  BatchPacker& operator=(const BatchPacker&) = delete;

  // A PackedBatch holding `plain` (at most WireLimits::max_payload_bytes).
  std::vector<std::uint8_t> pack(std::span<const std::uint8_t> plain);
  std::uint32_t dictionary_id() const;

 private:
  struct Context;
  std::unique_ptr<Context> ctx_;
};

// Whether `payload` is a PackedBatch (by its file identifier, never by guessing).
bool is_packed_batch(std::span<const std::uint8_t> payload);

// Decompresses PackedBatch payloads. One per thread (it keeps a zstd context); the
// dictionaries it knows are shared.
class BatchUnpacker {
 public:
  explicit BatchUnpacker(std::vector<std::shared_ptr<const BatchDictionary>> dictionaries = {});
  ~BatchUnpacker();
  BatchUnpacker(const BatchUnpacker&) = delete;
  BatchUnpacker& operator=(const BatchUnpacker&) = delete;
  void add_dictionary(std::shared_ptr<const BatchDictionary> dictionary);

  // Fills `plain` with the EventBatch inside `payload`. Never allocates more than
  // WireLimits::max_payload_bytes, whatever the frame claims: oversized (declared or actual
  // size above the limit, or a frame holding more than it declares), wrong_identifier, malformed
  // (the envelope fails the verifier), unsupported_version, unknown_codec, unknown_dictionary,
  // corrupt_frame (not one whole zstd frame of exactly the declared size).
  DecodeError unpack(std::span<const std::uint8_t> payload, std::vector<std::uint8_t>& plain);
  // The dictionary id of the last payload unpack() read the envelope of (0: none), for log lines.
  std::uint32_t last_dictionary_id() const { return last_dictionary_; }

 private:
  struct Context;
  std::unique_ptr<Context> ctx_;
  std::uint32_t last_dictionary_ = 0;
};

}  // namespace postwatch
