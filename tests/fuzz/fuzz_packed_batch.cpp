// libFuzzer: unpacking compressed batches (postwatch/batch_packing.hpp), as the aggregator does
// before anything else reads them. The first byte picks how the rest is used:
//   even: the whole payload as it came off the wire (envelope and all);
//   odd:  the rest as a zstd frame inside a well-formed envelope, so the decompressor is
//         reached without the fuzzer first having to build a valid FlatBuffer. Byte 1 picks the
//         dictionary (with or without the catalogue's), bytes 2-4 the declared size.
// Whatever unpacks must be at most the declared size and must decode (or be refused) as a
// plain batch would be.
#include "postwatch/batch_packing.hpp"
#include "postwatch/catalogue.hpp"
#include "postwatch/wire/postwatch_packed_generated.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>

using namespace postwatch;

namespace {

const std::shared_ptr<const BatchDictionary>& dictionary() {
  static const auto d = BatchDictionary::for_catalogue(IndicatorCatalogue::load(POSTWATCH_FUZZ_CATALOGUE));
  return d;
}

std::vector<std::uint8_t> wrap(const std::uint8_t* frame, std::size_t n, std::uint32_t declared, std::uint32_t dict) {
  flatbuffers::FlatBufferBuilder fbb;
  auto data = fbb.CreateVector(frame, n);
  auto root = wire::v1::CreatePackedBatch(fbb, 1, wire::v1::Codec::Zstd, declared, dict, data);
  wire::v1::FinishPackedBatchBuffer(fbb, root);
  return {fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize()};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static BatchUnpacker unpacker({dictionary()});
  if (size < 1) return 0;
  std::vector<std::uint8_t> payload;
  std::uint32_t declared = 0;
  if (data[0] % 2 == 0) {
    payload.assign(data + 1, data + size);
  } else {
    if (size < 5) return 0;
    const std::uint32_t dict = data[1] % 2 ? dictionary()->id() : 0;
    declared = (std::uint32_t{data[2]} << 16 | std::uint32_t{data[3]} << 8 | data[4]) & 0x1fffff;  // up to 2 MiB
    payload = wrap(data + 5, size - 5, declared, dict);
  }
  std::vector<std::uint8_t> plain;
  if (unpacker.unpack(payload, plain) != DecodeError::None) {
    if (!plain.empty()) std::abort();  // a refusal leaves nothing behind
    return 0;
  }
  if (plain.size() > WireLimits::max_payload_bytes) std::abort();
  if (data[0] % 2 == 1 && plain.size() != declared) std::abort();
  BatchView view;
  decode_batch(plain, view);
  return 0;
}
