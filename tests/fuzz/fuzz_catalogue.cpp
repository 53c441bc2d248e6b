// libFuzzer: the catalogue loader must refuse bad input with a CatalogueError, never crash.
#include "postwatch/catalogue.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    auto c = postwatch::IndicatorCatalogue::parse(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
    for (const auto& ind : c.indicators()) c.check_value(ind, ind.kind, ind.baseline, "x");
  } catch (const postwatch::CatalogueError&) {
  }
  return 0;
}
