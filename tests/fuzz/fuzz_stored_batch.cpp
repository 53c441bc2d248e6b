// libFuzzer: the store's record decoder (what start-up runs over every stored batch; a record
// whose checksum passes can still be one a later or a broken writer made). The summary comes
// from the input too, as the columns beside the body would.
#include "store/event_store.hpp"
#include "store/stored_batch.hpp"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace postwatch::aggregator;
  StoredBatchSummary s;
  if (size < 20) return 0;
  std::memcpy(&s.first_seq, data, 8);
  std::memcpy(&s.received_at_ms, data + 8, 8);
  std::uint32_t count = 0;
  std::memcpy(&count, data + 16, 4);
  s.count = count % 4096;
  std::string_view body(reinterpret_cast<const char*>(data + 20), size - 20);
  static const std::vector<std::string> names = {"", "terrorism_threat_level", "cyber_incidents"};
  StoredEventRow row;
  std::uint32_t seen = 0;
  bool ok = decode_stored_batch(body, s, names, row, [&](const StoredEventRow& r) {
    ++seen;
    if (r.indicator.size() > body.size() + 32 || r.text.size() > body.size()) __builtin_trap();
  });
  if (ok && seen != s.count) __builtin_trap();
  if (seen > s.count) __builtin_trap();
  return 0;
}
