// Reads an aggregator's store file without writing to it, for postwatch-store (tools/store):
// the events one agent or post sent, and whether every record is intact. It opens the file
// read-only, so it can run beside a running aggregator (SQLite's WAL lets a reader see the
// last commit while the writer goes on).
#pragma once

#include "store/event_store.hpp"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace postwatch::aggregator {

struct StoredEventFilter {
  std::string post, agent, indicator;  // empty: any
};

// A record whose checksum or body is wrong: which events it held.
struct DamagedRecord {
  std::int64_t id = 0;
  std::string post, agent;
  std::uint64_t first_seq = 0, last_seq = 0;
  std::uint32_t events = 0;       // the record says it holds
  std::uint32_t events_lost = 0;  // of those, could not be read
  std::string problem;            // "checksum mismatch" or "it does not decode"
};

struct StoreScan {
  std::uint64_t records = 0, events = 0;  // read (matching the filter)
  std::vector<DamagedRecord> damaged;
};

class StoreReader {
 public:
  // Throws std::runtime_error with the file and what is wrong: it does not exist, is not
  // SQLite, or is not a Postwatch store (of this version).
  explicit StoreReader(const std::filesystem::path& file);
  ~StoreReader();
  StoreReader(const StoreReader&) = delete;
  StoreReader& operator=(const StoreReader&) = delete;

  // Every stored event matching `filter`, in stored order (each agent's events in the order
  // ingest accepted them). The events of a damaged record are not passed on, except those
  // before the fault; the record is listed in the result.
  StoreScan scan(const StoredEventFilter& filter, const std::function<void(const StoredEventRow&)>& fn);

 private:
  std::filesystem::path file_;
  sqlite3* db_ = nullptr;
  std::vector<std::string> name_of_;  // indicator code -> id
};

}  // namespace postwatch::aggregator
