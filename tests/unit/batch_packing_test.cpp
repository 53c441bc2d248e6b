// Compressed batches (postwatch/batch_packing.hpp): round trips, the dictionary, and every way a
// PackedBatch is refused. Runs on the ARM targets too (firmware-config/cross-build --tests).
#include "postwatch/batch_packing.hpp"
#include "postwatch/catalogue.hpp"
#include "postwatch/wire/postwatch_packed_generated.h"
#include "support/test_support.hpp"

#include <gtest/gtest.h>
#include <zstd.h>
#include <nlohmann/json.hpp>

#include <fstream>

using namespace postwatch;
namespace fbw = postwatch::wire::v1;

namespace {

const IndicatorCatalogue& catalogue() { return test::shipped_catalogue(); }

std::shared_ptr<const BatchDictionary> dictionary() {
  static const auto d = BatchDictionary::for_catalogue(catalogue());
  return d;
}

EventBatch batch_of(std::size_t n) {
  EventBatch b;
  b.agent_id = "bamako-1";
  b.post_id = "bamako";
  b.sent_at_ms = 1764000000123;
  const auto& inds = catalogue().indicators();
  for (std::size_t i = 0; i < n; ++i) {
    const auto& ind = inds[i % inds.size()];
    IndicatorEvent e;
    e.seq = 1000 + i;
    e.observed_at_ms = 1764000000000 + static_cast<std::int64_t>(i) * 997;
    e.indicator = ind.id;
    e.kind = ind.kind;
    e.number = ind.kind == ValueKind::Text ? 0 : ind.min;
    if (ind.kind == ValueKind::Text) e.text = "curfew extended";
    b.events.push_back(e);
  }
  return b;
}

// A PackedBatch around `frame`, saying what the caller wants it to say.
std::vector<std::uint8_t> envelope(const std::vector<std::uint8_t>& frame, std::uint32_t plain_size,
                                   std::uint32_t dictionary_id = 0, std::uint16_t version = 1,
                                   fbw::Codec codec = fbw::Codec::Zstd) {
  flatbuffers::FlatBufferBuilder fbb;
  auto data = fbb.CreateVector(frame);
  fbw::FinishPackedBatchBuffer(fbb, fbw::CreatePackedBatch(fbb, version, codec, plain_size, dictionary_id, data));
  return {fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize()};
}

std::vector<std::uint8_t> zstd_frame(const std::vector<std::uint8_t>& content) {
  std::vector<std::uint8_t> out(ZSTD_compressBound(content.size()));
  out.resize(ZSTD_compress(out.data(), out.size(), content.data(), content.size(), 3));
  return out;
}

}  // namespace

TEST(BatchPacking, PlainAndPackedBatchesRoundTripWithAndWithoutTheDictionary) {
  const auto plain = encode_batch(batch_of(10));
  BatchUnpacker unpacker({dictionary()});
  for (auto dict : {std::shared_ptr<const BatchDictionary>{}, dictionary()}) {
    BatchPacker packer(dict);
    auto packed = packer.pack(plain);
    EXPECT_TRUE(is_packed_batch(packed));
    EXPECT_FALSE(is_packed_batch(plain));
    std::vector<std::uint8_t> out;
    ASSERT_EQ(unpacker.unpack(packed, out), DecodeError::None);
    EXPECT_EQ(out, plain);
    EXPECT_EQ(unpacker.last_dictionary_id(), dict ? dict->id() : 0u);
    EventBatch decoded;
    ASSERT_EQ(decode_batch(out, decoded), DecodeError::None);
    EXPECT_EQ(decoded.events.size(), 10u);
  }
  // A plain batch is not a PackedBatch: the reader dispatches on the identifier.
  std::vector<std::uint8_t> out;
  EXPECT_EQ(unpacker.unpack(plain, out), DecodeError::WrongIdentifier);
}

TEST(BatchPacking, TheDictionaryShrinksSmallBatchesMost) {
  BatchPacker zstd, with_dict(dictionary());
  for (std::size_t n : {1, 10, 100}) {
    const auto plain = encode_batch(batch_of(n));
    const auto z = zstd.pack(plain).size(), d = with_dict.pack(plain).size();
    EXPECT_LT(d, z) << n << " events";
    // One event is too little for zstd alone: the envelope and frame outweigh what it saves.
    if (n > 1) {
      EXPECT_LT(z, plain.size()) << n << " events";
    }
  }
  const auto one = encode_batch(batch_of(1));
  EXPECT_LE(with_dict.pack(one).size() * 2, one.size()) << "a one-event batch should at least halve";
}

TEST(BatchPacking, TheDictionaryFollowsTheCatalogue) {
  EXPECT_EQ(BatchDictionary::for_catalogue(catalogue())->id(), dictionary()->id());
  EXPECT_NE(dictionary()->id(), 0u);
  // Another catalogue (one indicator added) gives another dictionary, and so another id.
  test::TempDir dir;
  std::ifstream in(test::catalogue_path());
  auto j = nlohmann::json::parse(in);
  auto added = j["indicators"][0];
  added["id"] = added["id"].get<std::string>() + "_b";
  j["indicators"].push_back(added);
  std::ofstream(dir.path() / "other.json") << j.dump();
  auto other = IndicatorCatalogue::load(dir.path() / "other.json");
  auto other_dict = BatchDictionary::for_catalogue(other);
  EXPECT_NE(other_dict->id(), dictionary()->id());

  // A batch packed with one is refused by a reader holding only the other, never misread.
  BatchPacker packer(other_dict);
  auto packed = packer.pack(encode_batch(batch_of(3)));
  std::vector<std::uint8_t> out;
  BatchUnpacker ours({dictionary()}), none;
  EXPECT_EQ(ours.unpack(packed, out), DecodeError::UnknownDictionary);
  EXPECT_EQ(ours.last_dictionary_id(), other_dict->id());
  EXPECT_EQ(none.unpack(packed, out), DecodeError::UnknownDictionary);
  EXPECT_TRUE(out.empty());
  // A frame made with a dictionary but sent as if without one does not decode.
  auto relabelled = envelope(std::vector<std::uint8_t>(), 0);
  {
    flatbuffers::Verifier v(packed.data(), packed.size());
    ASSERT_TRUE(fbw::VerifyPackedBatchBuffer(v));
    const auto* p = fbw::GetPackedBatch(packed.data());
    relabelled = envelope({p->data()->begin(), p->data()->end()}, p->plain_size(), 0);
  }
  EXPECT_EQ(ours.unpack(relabelled, out), DecodeError::CorruptFrame);
}

TEST(BatchPacking, ABombIsRefusedAsOversizedBeforeItIsDecompressed) {
  BatchUnpacker unpacker;
  std::vector<std::uint8_t> out;
  // 8 MiB of zeros compress to a few hundred bytes.
  const auto bomb = zstd_frame(std::vector<std::uint8_t>(8u << 20, 0));
  ASSERT_LT(bomb.size(), 4096u);
  // Declared honestly: above the 1 MiB limit.
  EXPECT_EQ(unpacker.unpack(envelope(bomb, 8u << 20), out), DecodeError::Oversized);
  // Declared small: the frame's own header says more.
  EXPECT_EQ(unpacker.unpack(envelope(bomb, 1000), out), DecodeError::Oversized);
  // A streamed frame that does not say its size: decompression stops at the declared size.
  std::vector<std::uint8_t> streamed(1 << 16);
  {
    ZSTD_CCtx* c = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0);
    std::vector<std::uint8_t> zeros(4u << 20, 0);
    ZSTD_inBuffer in{zeros.data(), zeros.size(), 0};
    ZSTD_outBuffer o{streamed.data(), streamed.size(), 0};
    ASSERT_EQ(ZSTD_compressStream2(c, &o, &in, ZSTD_e_end), 0u);
    streamed.resize(o.pos);
    ZSTD_freeCCtx(c);
  }
  ASSERT_EQ(ZSTD_getFrameContentSize(streamed.data(), streamed.size()), ZSTD_CONTENTSIZE_UNKNOWN);
  EXPECT_EQ(unpacker.unpack(envelope(streamed, 1000), out), DecodeError::Oversized);
  EXPECT_TRUE(out.empty());
  // The envelope itself over the limit.
  EXPECT_EQ(unpacker.unpack(std::vector<std::uint8_t>((1u << 20) + 1, 0), out), DecodeError::Oversized);
}

TEST(BatchPacking, ATruncatedOrForeignFrameIsRefusedWithItsReason) {
  const auto plain = encode_batch(batch_of(20));
  BatchPacker packer;
  const auto packed = packer.pack(plain);
  flatbuffers::Verifier v(packed.data(), packed.size());
  ASSERT_TRUE(fbw::VerifyPackedBatchBuffer(v));
  const auto* p = fbw::GetPackedBatch(packed.data());
  const std::vector<std::uint8_t> frame(p->data()->begin(), p->data()->end());
  BatchUnpacker unpacker;
  std::vector<std::uint8_t> out;

  // The frame cut short, inside a well-formed envelope.
  for (std::size_t cut : {std::size_t{1}, std::size_t{5}, frame.size() / 2, frame.size() - 1}) {
    std::vector<std::uint8_t> short_frame(frame.begin(), frame.end() - static_cast<std::ptrdiff_t>(cut));
    EXPECT_EQ(unpacker.unpack(envelope(short_frame, p->plain_size()), out), DecodeError::CorruptFrame) << cut;
  }
  // Two frames, or trailing bytes.
  auto twice = frame;
  twice.insert(twice.end(), frame.begin(), frame.end());
  EXPECT_EQ(unpacker.unpack(envelope(twice, p->plain_size()), out), DecodeError::CorruptFrame);
  // A declared size the frame does not hold.
  EXPECT_EQ(unpacker.unpack(envelope(frame, p->plain_size() - 1), out), DecodeError::Oversized);
  EXPECT_EQ(unpacker.unpack(envelope(frame, p->plain_size() + 1), out), DecodeError::CorruptFrame);
  // Not zstd at all.
  EXPECT_EQ(unpacker.unpack(envelope(plain, static_cast<std::uint32_t>(plain.size())), out), DecodeError::CorruptFrame);
  // The envelope cut short: the verifier refuses it.
  std::vector<std::uint8_t> cut_envelope(packed.begin(), packed.end() - 8);
  EXPECT_EQ(unpacker.unpack(cut_envelope, out), DecodeError::Malformed);
  // A future envelope or codec.
  EXPECT_EQ(unpacker.unpack(envelope(frame, p->plain_size(), 0, 2), out), DecodeError::UnsupportedVersion);
  EXPECT_EQ(unpacker.unpack(envelope(frame, p->plain_size(), 0, 1, static_cast<fbw::Codec>(7)), out),
            DecodeError::UnknownCodec);
  EXPECT_TRUE(out.empty());
  // And the intact one still decodes after all that.
  ASSERT_EQ(unpacker.unpack(packed, out), DecodeError::None);
  EXPECT_EQ(out, plain);
}

TEST(BatchPacking, AMisalignedPayloadUnpacks) {
  const auto plain = encode_batch(batch_of(5));
  BatchPacker packer(dictionary());
  const auto packed = packer.pack(plain);
  std::vector<std::uint8_t> shifted(packed.size() + 1);
  std::copy(packed.begin(), packed.end(), shifted.begin() + 1);
  BatchUnpacker unpacker({dictionary()});
  std::vector<std::uint8_t> out;
  ASSERT_EQ(unpacker.unpack(std::span<const std::uint8_t>(shifted).subspan(1), out), DecodeError::None);
  EXPECT_EQ(out, plain);
}

TEST(BatchPacking, CompressionNamesParse) {
  for (auto c : {BatchCompression::None, BatchCompression::Zstd, BatchCompression::ZstdDictionary}) {
    BatchCompression back{};
    ASSERT_TRUE(parse_batch_compression(to_string(c), back));
    EXPECT_EQ(back, c);
  }
  BatchCompression x{};
  EXPECT_FALSE(parse_batch_compression("gzip", x));
}
