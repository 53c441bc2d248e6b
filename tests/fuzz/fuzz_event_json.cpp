// libFuzzer: the agent's JSON event input, against the shipped catalogue.
#include "postwatch/agent/agent.hpp"
#include "postwatch/agent/event_json.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const auto catalogue = postwatch::IndicatorCatalogue::load(POSTWATCH_FUZZ_CATALOGUE);
  postwatch::IndicatorEvent e;
  auto err =
      postwatch::agent::parse_event_json(std::string_view(reinterpret_cast<const char*>(data), size), catalogue, e);
  if (err.empty()) postwatch::agent::validate_event(catalogue, e);
  return 0;
}
