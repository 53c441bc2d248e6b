#include "report/report_data.hpp"

#include <sqlite3.h>
#include <nlohmann/json.hpp>

#include <algorithm>

namespace postwatch::aggregator {

namespace {

// A read-only connection that closes itself; its errors name the file.
class ReadOnlyStore {
 public:
  explicit ReadOnlyStore(const std::filesystem::path& file) : file_(file) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(file, ec)) throw StoreOpenError(file.string() + ": no such store file");
    if (sqlite3_open_v2(file.c_str(), &db_, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
      const std::string why = db_ ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close(db_);
      throw StoreOpenError(file.string() + ": cannot open: " + why);
    }
    sqlite3_busy_timeout(db_, 5000);
  }
  ~ReadOnlyStore() { sqlite3_close(db_); }
  ReadOnlyStore(const ReadOnlyStore&) = delete;
  ReadOnlyStore& operator=(const ReadOnlyStore&) = delete;

  sqlite3* db() const { return db_; }
  const std::filesystem::path& file() const { return file_; }
  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error(file_.string() + ": " + what + ": " + sqlite3_errmsg(db_));
  }

 private:
  std::filesystem::path file_;
  sqlite3* db_ = nullptr;
};

class Query {
 public:
  Query(const ReadOnlyStore& store, const char* sql) : store_(store) {
    if (sqlite3_prepare_v2(store.db(), sql, -1, &stmt_, nullptr) != SQLITE_OK) store.fail("cannot read");
  }
  ~Query() { sqlite3_finalize(stmt_); }
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;

  Query& bind(int i, std::int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  Query& bind(int i, const std::string& v) {
    sqlite3_bind_text(stmt_, i, v.c_str(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  // True while there is a row; a failed read throws.
  bool next() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc != SQLITE_DONE) store_.fail("read failed");
    return false;
  }
  std::int64_t integer(int i) const { return sqlite3_column_int64(stmt_, i); }
  double real(int i) const { return sqlite3_column_double(stmt_, i); }
  std::string text(int i) const {
    const auto* p = sqlite3_column_text(stmt_, i);
    return p ? reinterpret_cast<const char*>(p) : "";
  }

 private:
  const ReadOnlyStore& store_;
  sqlite3_stmt* stmt_ = nullptr;
};

// The tables the report reads. A file SQLite cannot read at all ("file is not a database")
// fails here too, on the first query.
bool has_table(const ReadOnlyStore& store, const char* name) {
  sqlite3_stmt* q = nullptr;
  if (sqlite3_prepare_v2(store.db(), "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", -1, &q,
                         nullptr) != SQLITE_OK)
    throw StoreOpenError(store.file().string() + ": not a store: " + sqlite3_errmsg(store.db()));
  sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
  const int rc = sqlite3_step(q);
  sqlite3_finalize(q);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    throw StoreOpenError(store.file().string() + ": not a store: " + sqlite3_errmsg(store.db()));
  return rc == SQLITE_ROW;
}

GoalHistorySummary goal_history(const ReadOnlyStore& store, int goal, std::int64_t from_ms, std::int64_t to_ms) {
  GoalHistoryBuilder builder(from_ms, to_ms);
  Query q(store,
          "SELECT at_ms, status FROM history WHERE scope = 'goal' AND id = ?1 AND at_ms >= ?2 AND at_ms < ?3 "
          "ORDER BY at_ms, rowid");
  q.bind(1, std::to_string(goal)).bind(2, from_ms - kHistoryPointHoldsMs).bind(3, to_ms);
  while (q.next()) builder.add({q.integer(0), board_state_of(q.text(1))});
  return builder.finish();
}

ReportAlarm alarm_of(const nlohmann::json& j) {
  ReportAlarm a;
  a.id = j.value("id", std::uint64_t{0});
  a.kind = j.value("kind", "");
  a.goal = j.value("goal", 0);
  a.post = j.value("post", "");
  a.worst_level = j.value("worst_level", j.value("level", ""));  // older stores kept the level only
  a.raised_at_ms = j.value("raised_at_ms", std::int64_t{0});
  a.cleared_at_ms = j.value("cleared_at_ms", std::int64_t{0});
  for (const auto& c : j.value("causes", nlohmann::json::array())) {
    const auto post = c.value("post", "");
    if (!post.empty() && std::find(a.cause_posts.begin(), a.cause_posts.end(), post) == a.cause_posts.end())
      a.cause_posts.push_back(post);
  }
  a.acked_by = j.value("acked_by", "");
  return a;
}

void load_alarms(const ReadOnlyStore& store, ReportData& out) {
  Query q(store, "SELECT id, body FROM alarms ORDER BY id");
  while (q.next()) {
    const auto body = nlohmann::json::parse(q.text(1), nullptr, false);
    if (!body.is_object())
      throw std::runtime_error(store.file().string() + ": alarm " + std::to_string(q.integer(0)) +
                               " is not a JSON object");
    ReportAlarm a;
    try {
      a = alarm_of(body);
    } catch (const nlohmann::json::exception& e) {
      throw std::runtime_error(store.file().string() + ": alarm " + std::to_string(q.integer(0)) + ": " + e.what());
    }
    const bool open_in_period = a.raised_at_ms < out.to_ms && (a.cleared_at_ms == 0 || a.cleared_at_ms > out.from_ms);
    if (!open_in_period) continue;
    auto goal = out.goals.find(a.goal);
    if (a.kind == "goal" && goal != out.goals.end())
      goal->second.alarms.push_back(std::move(a));
    else
      out.other_alarms.push_back(std::move(a));
  }
  auto by_raise = [](const ReportAlarm& a, const ReportAlarm& b) {
    return a.raised_at_ms != b.raised_at_ms ? a.raised_at_ms < b.raised_at_ms : a.id < b.id;
  };
  for (auto& [goal, ops] : out.goals) std::sort(ops.alarms.begin(), ops.alarms.end(), by_raise);
  std::sort(out.other_alarms.begin(), out.other_alarms.end(), by_raise);
}

}  // namespace

std::filesystem::path store_file_of(const std::filesystem::path& given) {
  std::error_code ec;
  return std::filesystem::is_directory(given, ec) ? given / "postwatch.sqlite" : given;
}

ReportData load_report_data(const std::filesystem::path& store_path, const IndicatorCatalogue& catalogue,
                            std::int64_t from_ms, std::int64_t to_ms) {
  const ReadOnlyStore store(store_file_of(store_path));
  for (const char* table : {"history", "alarms"})
    if (!has_table(store, table))
      throw StoreOpenError(store.file().string() + ": not a Postwatch store (it has no " + table + " table)");

  ReportData out;
  out.from_ms = from_ms;
  out.to_ms = to_ms;
  for (const auto& g : catalogue.goals()) out.goals[g.id].history = goal_history(store, g.id, from_ms, to_ms);
  load_alarms(store, out);
  // A store from before the ministry's figures were kept has none to give.
  if (has_table(store, "strategy_readings")) {
    Query q(store,
            "SELECT indicator, observed_at_ms, value FROM strategy_readings WHERE observed_at_ms <= ?1 "
            "ORDER BY indicator, observed_at_ms");
    q.bind(1, to_ms);
    while (q.next()) out.readings[q.text(0)].push_back({q.integer(1), q.real(2)});
  }
  return out;
}

}  // namespace postwatch::aggregator
