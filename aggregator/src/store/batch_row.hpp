// One event_batches row as the store's readers see it (internal to store/): EventStore's
// replay and queries, and StoreReader.
#pragma once

#include "postwatch/crc32c.hpp"
#include "store/event_store.hpp"
#include "store/sqlite_statement.hpp"

#include <cstdint>
#include <string_view>

namespace postwatch::aggregator {

inline constexpr const char* kBatchColumns =
    "SELECT id, post, agent, first_seq, last_seq, count, min_observed_ms, max_observed_ms, received_at_ms, crc, body "
    "FROM event_batches ";

// One record as read: its identity, its summary, and whether its body is intact.
struct BatchRow {
  std::int64_t id = 0;
  StoredBatchSummary summary;
  std::string_view body;  // valid until the next step
  bool intact = false;
  void read(sqlite3_stmt* st, StoredEventRow& row) {
    id = sqlite3_column_int64(st, 0);
    row.post = sqlite::text_col(st, 1);
    row.agent = sqlite::text_col(st, 2);
    summary.first_seq = static_cast<std::uint64_t>(sqlite3_column_int64(st, 3));
    summary.last_seq = static_cast<std::uint64_t>(sqlite3_column_int64(st, 4));
    summary.count = static_cast<std::uint32_t>(sqlite3_column_int64(st, 5));
    summary.min_observed_ms = sqlite3_column_int64(st, 6);
    summary.max_observed_ms = sqlite3_column_int64(st, 7);
    summary.received_at_ms = sqlite3_column_int64(st, 8);
    const auto crc = static_cast<std::uint32_t>(sqlite3_column_int64(st, 9));
    const void* blob = sqlite3_column_blob(st, 10);
    body = {static_cast<const char*>(blob), static_cast<std::size_t>(sqlite3_column_bytes(st, 10))};
    intact = crc32c(body.data(), body.size()) == crc;
  }
};

}  // namespace postwatch::aggregator
