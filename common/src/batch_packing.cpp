#include "postwatch/batch_packing.hpp"

#include "postwatch/catalogue.hpp"
#include "postwatch/crc32c.hpp"
#include "postwatch/wire/postwatch_packed_generated.h"

#include <zstd.h>
#include <zstd_errors.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace postwatch {
namespace fbw = postwatch::wire::v1;

std::string_view to_string(BatchCompression c) {
  switch (c) {
    case BatchCompression::None: return "none";
    case BatchCompression::Zstd: return "zstd";
    case BatchCompression::ZstdDictionary: return "zstd-dictionary";
  }
  return "unknown";
}

bool parse_batch_compression(std::string_view name, BatchCompression& out) {
  for (auto c : {BatchCompression::None, BatchCompression::Zstd, BatchCompression::ZstdDictionary}) {
    if (to_string(c) == name) {
      out = c;
      return true;
    }
  }
  return false;
}

// ---- BatchDictionary

struct BatchDictionary::Tables {
  ZSTD_DDict* ddict = nullptr;
  ~Tables() { ZSTD_freeDDict(ddict); }
};

namespace {

// Bump when the content below changes, so the id changes with it even if the CRC would not.
constexpr const char* kDictionaryRecipe = "postwatch-batch-dictionary-v1";

// zstd finds matches cheaper the nearer they are to the end of the dictionary, so what nearly
// every batch holds (the batch and event layout, the indicator ids) goes last.
// Field values as real batches have them: FlatBuffers leaves out a field at its default, so
// zeros here would give tables of another shape than the agent's; and times of this decade share
// their high bytes with every timestamp an agent sends.
constexpr std::int64_t kTypicalTimeMs = 1764000000000;  // 2025-11-24

std::vector<std::uint8_t> dictionary_content(const IndicatorCatalogue& catalogue) {
  std::vector<std::uint8_t> out(kDictionaryRecipe,
                                kDictionaryRecipe + std::char_traits<char>::length(kDictionaryRecipe));
  auto append = [&out](const std::vector<std::uint8_t>& bytes) { out.insert(out.end(), bytes.begin(), bytes.end()); };
  // One event from each post: its id as the batch's post and the start of its agent ids.
  for (const auto& post : catalogue.posts()) {
    if (catalogue.indicators().empty()) break;
    EventBatch b;
    b.post_id = post.id;
    b.agent_id = post.id + "-1";
    b.sent_at_ms = kTypicalTimeMs;
    const auto& ind = catalogue.indicators().front();
    b.events.push_back({1, kTypicalTimeMs, ind.id, ind.kind, ind.max, {}, {}, {}});
    append(encode_batch(b));
  }
  // Every indicator in one batch: the event tables and the ids.
  EventBatch all;
  all.post_id = "post";
  all.agent_id = "agent";
  all.sent_at_ms = kTypicalTimeMs;
  std::uint64_t seq = 1;
  for (const auto& ind : catalogue.indicators())
    all.events.push_back({seq++,
                          kTypicalTimeMs,
                          ind.id,
                          ind.kind,
                          ind.kind == ValueKind::Text ? 0 : ind.max,
                          ind.kind == ValueKind::Text ? "text" : "",
                          {},
                          {}});
  append(encode_batch(all));
  return out;
}

}  // namespace

BatchDictionary::BatchDictionary(std::vector<std::uint8_t> content)
    : content_(std::move(content)), tables_(std::make_unique<Tables>()) {
  id_ = crc32c(content_.data(), content_.size());
  if (id_ == 0) id_ = 1;  // 0 means "no dictionary" on the wire
  tables_->ddict = ZSTD_createDDict(content_.data(), content_.size());
  if (!tables_->ddict) throw std::runtime_error("zstd: cannot prepare the batch dictionary");
}

BatchDictionary::~BatchDictionary() = default;

std::shared_ptr<const BatchDictionary> BatchDictionary::for_catalogue(const IndicatorCatalogue& catalogue) {
  return std::shared_ptr<const BatchDictionary>(new BatchDictionary(dictionary_content(catalogue)));
}

// ---- BatchPacker

struct BatchPacker::Context {
  ZSTD_CCtx* cctx = nullptr;
  ZSTD_CDict* cdict = nullptr;
  std::shared_ptr<const BatchDictionary> dictionary;
  int level = 3;
  std::vector<std::uint8_t> frame;
  ~Context() {
    ZSTD_freeCDict(cdict);
    ZSTD_freeCCtx(cctx);
  }
};

BatchPacker::BatchPacker(std::shared_ptr<const BatchDictionary> dictionary, int level)
    : ctx_(std::make_unique<Context>()) {
  ctx_->level = std::clamp(level, 1, ZSTD_maxCLevel());
  ctx_->cctx = ZSTD_createCCtx();
  if (!ctx_->cctx) throw std::runtime_error("zstd: cannot create a compression context");
  ctx_->dictionary = std::move(dictionary);
  if (ctx_->dictionary) {
    const auto& d = *ctx_->dictionary;
    ctx_->cdict = ZSTD_createCDict(d.content_.data(), d.content_.size(), ctx_->level);
    if (!ctx_->cdict) throw std::runtime_error("zstd: cannot prepare the batch dictionary");
  }
}

BatchPacker::~BatchPacker() = default;

std::uint32_t BatchPacker::dictionary_id() const { return ctx_->dictionary ? ctx_->dictionary->id() : 0; }

std::vector<std::uint8_t> BatchPacker::pack(std::span<const std::uint8_t> plain) {
  if (plain.size() > WireLimits::max_payload_bytes)
    throw std::invalid_argument("pack: a batch larger than the wire's 1 MiB limit");
  auto& c = *ctx_;
  c.frame.resize(ZSTD_compressBound(plain.size()));
  const std::size_t n =
      c.cdict ? ZSTD_compress_usingCDict(c.cctx, c.frame.data(), c.frame.size(), plain.data(), plain.size(), c.cdict)
              : ZSTD_compressCCtx(c.cctx, c.frame.data(), c.frame.size(), plain.data(), plain.size(), c.level);
  if (ZSTD_isError(n)) throw std::runtime_error(std::string("zstd: ") + ZSTD_getErrorName(n));
  flatbuffers::FlatBufferBuilder fbb(n + 64);
  auto data = fbb.CreateVector(c.frame.data(), n);
  auto root = fbw::CreatePackedBatch(fbb, WireLimits::schema_version, fbw::Codec::Zstd,
                                     static_cast<std::uint32_t>(plain.size()), dictionary_id(), data);
  fbw::FinishPackedBatchBuffer(fbb, root);
  return {fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize()};
}

// ---- BatchUnpacker

bool is_packed_batch(std::span<const std::uint8_t> payload) {
  return payload.size() >= 8 && fbw::PackedBatchBufferHasIdentifier(payload.data());
}

struct BatchUnpacker::Context {
  ZSTD_DCtx* dctx = nullptr;
  std::vector<std::shared_ptr<const BatchDictionary>> dictionaries;
  ~Context() { ZSTD_freeDCtx(dctx); }
};

BatchUnpacker::BatchUnpacker(std::vector<std::shared_ptr<const BatchDictionary>> dictionaries)
    : ctx_(std::make_unique<Context>()) {
  ctx_->dctx = ZSTD_createDCtx();
  if (!ctx_->dctx) throw std::runtime_error("zstd: cannot create a decompression context");
  ctx_->dictionaries = std::move(dictionaries);
}

BatchUnpacker::~BatchUnpacker() = default;

void BatchUnpacker::add_dictionary(std::shared_ptr<const BatchDictionary> dictionary) {
  if (dictionary) ctx_->dictionaries.push_back(std::move(dictionary));
}

DecodeError BatchUnpacker::unpack(std::span<const std::uint8_t> payload, std::vector<std::uint8_t>& plain) {
  last_dictionary_ = 0;
  plain.clear();
  if (payload.size() > WireLimits::max_payload_bytes) return DecodeError::Oversized;
  if (!is_packed_batch(payload)) return DecodeError::WrongIdentifier;
  // The verifier reads scalars in place: an unaligned payload is checked from an aligned copy.
  std::vector<std::uint64_t> aligned;
  const std::uint8_t* at = payload.data();
  if (reinterpret_cast<std::uintptr_t>(at) % alignof(std::uint64_t) != 0) {
    aligned.resize((payload.size() + 7) / 8);
    std::memcpy(aligned.data(), payload.data(), payload.size());
    at = reinterpret_cast<const std::uint8_t*>(aligned.data());
  }
  flatbuffers::Verifier verifier(at, payload.size(), flatbuffers::Verifier::Options{.max_depth = 4, .max_tables = 4});
  if (!fbw::VerifyPackedBatchBuffer(verifier)) return DecodeError::Malformed;
  const auto* packed = fbw::GetPackedBatch(at);
  if (packed->schema_version() != WireLimits::schema_version) return DecodeError::UnsupportedVersion;
  if (packed->codec() != fbw::Codec::Zstd) return DecodeError::UnknownCodec;
  last_dictionary_ = packed->dictionary_id();
  const std::size_t declared = packed->plain_size();
  if (declared > WireLimits::max_payload_bytes) return DecodeError::Oversized;

  const ZSTD_DDict* ddict = nullptr;
  if (packed->dictionary_id() != 0) {
    auto it = std::find_if(ctx_->dictionaries.begin(), ctx_->dictionaries.end(),
                           [&](const auto& d) { return d->id() == packed->dictionary_id(); });
    if (it == ctx_->dictionaries.end()) return DecodeError::UnknownDictionary;
    ddict = (*it)->tables_->ddict;
  }
  const auto* data = packed->data();
  // Exactly one frame, nothing after it.
  if (ZSTD_findFrameCompressedSize(data->data(), data->size()) != data->size()) return DecodeError::CorruptFrame;
  // A frame that says it holds more than declared is a bomb; one that does not say (streamed)
  // is stopped at the declared size below.
  const unsigned long long content = ZSTD_getFrameContentSize(data->data(), data->size());
  if (content == ZSTD_CONTENTSIZE_ERROR) return DecodeError::CorruptFrame;
  if (content != ZSTD_CONTENTSIZE_UNKNOWN) {
    if (content > declared) return DecodeError::Oversized;
    if (content < declared) return DecodeError::CorruptFrame;
  }

  // Decompressed into exactly the declared size: a frame that would write more stops there.
  plain.resize(declared);
  const std::size_t n =
      ZSTD_decompress_usingDDict(ctx_->dctx, plain.data(), plain.size(), data->data(), data->size(), ddict);
  if (ZSTD_isError(n) || n != declared) {
    const bool too_big = ZSTD_isError(n) && ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall;
    plain.clear();
    return too_big ? DecodeError::Oversized : DecodeError::CorruptFrame;
  }
  return DecodeError::None;
}

}  // namespace postwatch
