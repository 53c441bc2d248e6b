// The aggregator's SQLite store read beside it (WAL lets a reader work beside the writer): when
// each event of a run was received, for latency and duration figures.
#pragma once

#include "e2e/common.hpp"
#include "postwatch/catalogue.hpp"
#include "store/event_store.hpp"

#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <string>
#include <vector>

namespace postwatch::bench::e2e {

// The aggregator's store, opened beside it (WAL lets it read beside the writer).
class StoreReader {
 public:
  StoreReader(const fs::path& file, const IndicatorCatalogue& catalogue)
      : store_({file}, catalogue, spdlog::null_logger_mt("store-reader-" + std::to_string(++instances_))) {}
  struct Rows {
    std::vector<std::int64_t> latency_ms;  // received_at - observed_at, sorted
    std::int64_t first_received_ms = 0, last_received_ms = 0;
  };
  // The events of agents "<tag>-*" received at or after since_ms.
  Rows rows(const std::string& tag, std::int64_t since_ms) {
    Rows r;
    const std::string prefix = tag + "-";
    r.first_received_ms = INT64_MAX;
    store_.scan_received_since(since_ms, [&](const aggregator::StoredEventRow& e) {
      if (!e.agent.starts_with(prefix)) return;
      r.latency_ms.push_back(e.received_at_ms - e.observed_at_ms);
      r.first_received_ms = std::min(r.first_received_ms, e.received_at_ms);
      r.last_received_ms = std::max(r.last_received_ms, e.received_at_ms);
    });
    std::sort(r.latency_ms.begin(), r.latency_ms.end());
    return r;
  }

 private:
  static inline int instances_ = 0;
  aggregator::EventStore store_;
};

}  // namespace postwatch::bench::e2e
