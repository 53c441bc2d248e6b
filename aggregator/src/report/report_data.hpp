// What the progress report needs from an aggregator's store, for a period: each goal's history
// summarised (report/goal_history.hpp), the alarms that were open during it, and the ministry's
// figures. Reads the file read-only (SQLite's WAL lets it run beside a running aggregator), with
// SQLite alone, so postwatch-report needs nothing of the aggregator's network code.
#pragma once

#include "postwatch/catalogue.hpp"
#include "progress/strategy_progress.hpp"
#include "report/goal_history.hpp"

#include <cstdint>
#include <filesystem>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace postwatch::aggregator {

// The file cannot be read as a store: missing, not SQLite, not a Postwatch store. what() names it.
class StoreOpenError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// An alarm as the store keeps it (the fields of alarm_to_json the report shows).
struct ReportAlarm {
  std::uint64_t id = 0;
  std::string kind;  // "goal", "post_silent", "topic_mismatch", "clock_offset", "store_failing"
  int goal = 0;      // kind goal
  std::string post;  // the post it is about, for the kinds about one
  std::string worst_level;
  std::int64_t raised_at_ms = 0;
  std::int64_t cleared_at_ms = 0;        // 0: still open
  std::vector<std::string> cause_posts;  // the distinct posts of its causes, in its order
  std::string acked_by;
};

struct GoalOperations {
  GoalHistorySummary history;
  std::vector<ReportAlarm> alarms;  // this goal's alarms open at some time in the period, by raise time
};

struct ReportData {
  std::int64_t from_ms = 0, to_ms = 0;
  std::map<int, GoalOperations> goals;    // every goal of the catalogue
  std::vector<ReportAlarm> other_alarms;  // of no goal (a silent post, the store), open in the period
  ReadingSeries readings;                 // the ministry's figures dated up to to_ms
};

// The store file: `given`, or postwatch.sqlite in it when it is the aggregator's --data-dir.
std::filesystem::path store_file_of(const std::filesystem::path& given);

// Everything for the period [from_ms, to_ms). Throws StoreOpenError when the file cannot be
// read as a store, std::runtime_error (naming the file) when a read fails.
ReportData load_report_data(const std::filesystem::path& store, const IndicatorCatalogue& catalogue,
                            std::int64_t from_ms, std::int64_t to_ms);

}  // namespace postwatch::aggregator
