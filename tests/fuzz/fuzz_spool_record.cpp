// libFuzzer: the spool reader's record decoder (what recovery runs over a torn or corrupt file).
#include "postwatch/agent/spool_record.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  postwatch::IndicatorEvent e;
  while (!in.empty()) {
    std::size_t used = 0;
    if (postwatch::agent::decode_record(in, e, used) != postwatch::agent::RecordStatus::Ok) break;
    // A record that decodes must encode back to the same bytes.
    std::string again;
    postwatch::agent::encode_record(e, again);
    if (again != in.substr(0, used)) __builtin_trap();
    in.remove_prefix(used);
  }
  return 0;
}
