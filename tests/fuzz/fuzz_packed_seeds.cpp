// Writes the seed corpus of fuzz_packed_batch from the current wire code: batches of 1, 10 and
// 100 events packed with and without the catalogue's dictionary, in both of the target's modes
// (whole payload, or frame in an envelope the target builds).
// Run: fuzz_packed_seeds <catalogue> <corpus dir> (tools/fuzz does, before fuzzing).
#include "postwatch/batch_packing.hpp"
#include "postwatch/catalogue.hpp"
#include "postwatch/wire/postwatch_packed_generated.h"

#include <cstdio>
#include <filesystem>
#include <fstream>

using namespace postwatch;

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s <catalogue> <corpus dir>\n", argv[0]);
    return 2;
  }
  const auto catalogue = IndicatorCatalogue::load(argv[1]);
  const auto dict = BatchDictionary::for_catalogue(catalogue);
  std::filesystem::create_directories(argv[2]);
  auto write = [&](const std::string& name, std::uint8_t mode, const std::vector<std::uint8_t>& bytes) {
    std::ofstream out(std::filesystem::path(argv[2]) / name, std::ios::binary);
    out.put(static_cast<char>(mode));
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  };
  for (std::size_t n : {1, 10, 100}) {
    EventBatch b{"bamako-1", "bamako", 1764000000000, {}};
    for (std::size_t i = 0; i < n; ++i) {
      const auto& ind = catalogue.indicators()[i % catalogue.indicators().size()];
      b.events.push_back(
          {i + 1, 1764000000000, ind.id, ind.kind, ind.min, ind.kind == ValueKind::Text ? "text" : "", "", {}});
    }
    const auto plain = encode_batch(b);
    for (bool with_dict : {false, true}) {
      BatchPacker packer(with_dict ? dict : nullptr);
      const auto packed = packer.pack(plain);
      const std::string name = std::to_string(n) + (with_dict ? "-dict" : "-zstd");
      write("payload-" + name, 0, packed);
      const auto* p = wire::v1::GetPackedBatch(packed.data());
      std::vector<std::uint8_t> framed{
          static_cast<std::uint8_t>(with_dict ? 1 : 0), static_cast<std::uint8_t>(plain.size() >> 16),
          static_cast<std::uint8_t>(plain.size() >> 8), static_cast<std::uint8_t>(plain.size())};
      framed.insert(framed.end(), p->data()->begin(), p->data()->end());
      write("frame-" + name, 1, framed);
    }
  }
  return 0;
}
