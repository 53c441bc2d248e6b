#include "alerting/outbox_table.hpp"

#include <nlohmann/json.hpp>

#include <random>
#include <stdexcept>

namespace postwatch::aggregator {

namespace {

// A prepared statement that finalizes itself.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK)
      throw std::runtime_error(std::string("notifications store: ") + sqlite3_errmsg(db));
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  Statement& bind(int i, std::int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  Statement& bind(int i, const std::string& v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  bool step() {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc != SQLITE_DONE) throw std::runtime_error(std::string("notifications store: ") + sqlite3_errmsg(db_));
    return false;
  }
  std::int64_t integer(int i) { return sqlite3_column_int64(stmt_, i); }
  bool null(int i) { return sqlite3_column_type(stmt_, i) == SQLITE_NULL; }
  std::string text(int i) {
    auto* p = sqlite3_column_text(stmt_, i);
    return p ? reinterpret_cast<const char*>(p) : "";
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

constexpr const char* kColumns =
    "SELECT id, channel, created_at_ms, next_attempt_at_ms, attempts, last_error, entries, group_key FROM "
    "notifications ";

}  // namespace

OutboxTable::OutboxTable(const std::filesystem::path& file) : file_(file) {
  if (sqlite3_open(file.c_str(), &db_) != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    throw std::runtime_error("cannot open " + file.string() + ": " + msg);
  }
  try {
    exec("PRAGMA journal_mode=WAL");
    exec("PRAGMA synchronous=FULL");
    // AUTOINCREMENT: a delivered notification's id is never handed out again (receivers dedupe on it).
    exec(
        "CREATE TABLE IF NOT EXISTS notifications (id INTEGER PRIMARY KEY AUTOINCREMENT, channel TEXT NOT NULL, "
        "group_key TEXT NOT NULL, created_at_ms INTEGER NOT NULL, next_attempt_at_ms INTEGER NOT NULL, "
        "attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT NOT NULL DEFAULT '', entries TEXT NOT NULL)");
    exec("CREATE INDEX IF NOT EXISTS notifications_due ON notifications (next_attempt_at_ms)");
    // The last change stored for each alarm: the alarm store commits on its own, so after a
    // SIGKILL it may restore an alarm as open whose clearance is already here (AlarmNotifier).
    exec("CREATE TABLE IF NOT EXISTS said (alarm INTEGER PRIMARY KEY, event TEXT NOT NULL, at_ms INTEGER NOT NULL)");
    exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
    Statement get(db_, "SELECT value FROM meta WHERE key = 'file_tag'");
    if (get.step()) {
      tag_ = get.text(0);
    } else {
      std::random_device rd;
      char buf[17];
      std::snprintf(buf, sizeof buf, "%08x%08x", rd(), rd());
      tag_ = buf;
      Statement put(db_, "INSERT INTO meta (key, value) VALUES ('file_tag', ?)");
      put.bind(1, tag_).step();
    }
  } catch (const std::runtime_error& e) {
    sqlite3_close(db_);
    throw std::runtime_error(file.string() + ": " + e.what());
  }
}

OutboxTable::~OutboxTable() { sqlite3_close(db_); }

void OutboxTable::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    throw std::runtime_error("notifications store: " + msg);
  }
}

void OutboxTable::add(const std::string& channel, const std::string& group_key, const std::string& entry_json,
                      std::int64_t group_wait_ms, std::int64_t now_ms) {
  in_transaction([&] {
    add_entry(channel, group_key, entry_json, group_wait_ms, now_ms);
    auto e = nlohmann::json::parse(entry_json, nullptr, false);
    if (e.is_object() && e.contains("id") && e["id"].is_number_unsigned() && e.contains("event") &&
        e["event"].is_string()) {
      Statement said(db_,
                     "INSERT INTO said (alarm, event, at_ms) VALUES (?, ?, ?) ON CONFLICT(alarm) DO UPDATE SET "
                     "event = excluded.event, at_ms = excluded.at_ms");
      said.bind(1, e["id"].get<std::int64_t>()).bind(2, e["event"].get<std::string>()).bind(3, now_ms).step();
    }
  });
}

template <class Fn>
void OutboxTable::in_transaction(Fn&& fn) {
  exec("BEGIN IMMEDIATE");
  try {
    fn();
    exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

std::int64_t OutboxTable::insert(const std::string& channel, const std::string& group_key, std::int64_t created_at_ms,
                                 std::int64_t due_ms, const std::string& entries_json) {
  Statement s(db_,
              "INSERT INTO notifications (channel, group_key, created_at_ms, next_attempt_at_ms, entries) "
              "VALUES (?, ?, ?, ?, ?)");
  s.bind(1, channel).bind(2, group_key).bind(3, created_at_ms).bind(4, due_ms).bind(5, entries_json).step();
  return sqlite3_last_insert_rowid(db_);
}

std::map<std::uint64_t, std::string> OutboxTable::last_said(std::int64_t since_ms) {
  Statement prune(db_, "DELETE FROM said WHERE at_ms < ?");
  prune.bind(1, since_ms).step();
  Statement s(db_, "SELECT alarm, event FROM said");
  std::map<std::uint64_t, std::string> out;
  while (s.step()) out[static_cast<std::uint64_t>(s.integer(0))] = s.text(1);
  return out;
}

void OutboxTable::add_entry(const std::string& channel, const std::string& group_key, const std::string& entry_json,
                            std::int64_t group_wait_ms, std::int64_t now_ms) {
  Statement open(db_,
                 "SELECT id, entries FROM notifications WHERE group_key = ? AND attempts = 0 AND "
                 "next_attempt_at_ms > ? ORDER BY id DESC LIMIT 1");
  if (open.bind(1, group_key).bind(2, now_ms).step()) {
    auto entries = nlohmann::json::parse(open.text(1));
    entries.push_back(nlohmann::json::parse(entry_json));
    Statement update(db_, "UPDATE notifications SET entries = ? WHERE id = ?");
    update.bind(1, entries.dump()).bind(2, open.integer(0)).step();
    return;
  }
  insert(channel, group_key, now_ms, now_ms + group_wait_ms, "[" + entry_json + "]");
}

void OutboxTable::replace(const std::string& channel, const std::string& group_key, const std::string& entries_json,
                          std::int64_t now_ms) {
  in_transaction([&] {
    Statement drop(db_, "DELETE FROM notifications WHERE group_key = ?");
    drop.bind(1, group_key).step();
    if (entries_json != "[]") insert(channel, group_key, now_ms, now_ms, entries_json);
  });
}

std::vector<PendingNotification> OutboxTable::select(const char* where, std::int64_t arg) {
  Statement s(db_, (std::string(kColumns) + where).c_str());
  s.bind(1, arg);
  std::vector<PendingNotification> out;
  while (s.step())
    out.push_back({s.integer(0), s.text(1), s.integer(2), s.integer(3), static_cast<int>(s.integer(4)), s.text(5),
                   s.text(6), s.text(7)});
  return out;
}

std::int64_t OutboxTable::insert_taken_over(const PendingNotification& n, std::int64_t now_ms) {
  return insert(n.channel, n.group_key, n.created_at_ms, now_ms, n.entries);
}

std::vector<PendingNotification> OutboxTable::all() { return select("WHERE id > ? ORDER BY id", 0); }

std::optional<PendingNotification> OutboxTable::next_due(std::int64_t now_ms) {
  auto rows = select("WHERE next_attempt_at_ms <= ? ORDER BY next_attempt_at_ms, id LIMIT 1", now_ms);
  if (rows.empty()) return std::nullopt;
  return rows.front();
}

std::optional<std::int64_t> OutboxTable::earliest_attempt_at() {
  Statement s(db_, "SELECT MIN(next_attempt_at_ms) FROM notifications");
  if (!s.step() || s.null(0)) return std::nullopt;
  return s.integer(0);
}

void OutboxTable::remove(std::int64_t id) {
  Statement s(db_, "DELETE FROM notifications WHERE id = ?");
  s.bind(1, id).step();
}

void OutboxTable::failed(std::int64_t id, std::int64_t next_attempt_at_ms, const std::string& error) {
  Statement s(db_,
              "UPDATE notifications SET attempts = attempts + 1, next_attempt_at_ms = ?, last_error = ? WHERE id = ?");
  s.bind(1, next_attempt_at_ms).bind(2, error).bind(3, id).step();
}

std::uint64_t OutboxTable::count() {
  Statement s(db_, "SELECT COUNT(*) FROM notifications");
  return s.step() ? static_cast<std::uint64_t>(s.integer(0)) : 0;
}

std::optional<std::int64_t> OutboxTable::oldest_created_at() {
  Statement s(db_, "SELECT MIN(created_at_ms) FROM notifications");
  if (!s.step() || s.null(0)) return std::nullopt;
  return s.integer(0);
}

std::vector<PendingNotification> OutboxTable::created_before(std::int64_t before_ms) {
  return select("WHERE created_at_ms < ? ORDER BY id", before_ms);
}

}  // namespace postwatch::aggregator
