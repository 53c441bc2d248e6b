// The notifications waiting to go out, in their own SQLite file (<data-dir>/notifications.sqlite,
// WAL, synchronous=FULL), so a notification survives a crash of the aggregator once add()
// returns. Used by one thread only: the NotificationOutbox's worker.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace postwatch::aggregator {

struct PendingNotification {
  std::int64_t id = 0;
  std::string channel;
  std::int64_t created_at_ms = 0;
  std::int64_t next_attempt_at_ms = 0;
  int attempts = 0;
  std::string last_error;
  std::string entries;  // a JSON array of alarm changes
  std::string group_key;
};

class OutboxTable {
 public:
  // Opens (creating if needed) the file; throws std::runtime_error naming it.
  explicit OutboxTable(const std::filesystem::path& file);
  ~OutboxTable();
  OutboxTable(const OutboxTable&) = delete;
  OutboxTable& operator=(const OutboxTable&) = delete;

  // Adds one alarm change (a JSON object). Joins the notification of the same group_key that is
  // still gathering (never tried, not yet due); otherwise starts one due at now + group_wait.
  void add(const std::string& channel, const std::string& group_key, const std::string& entry_json,
           std::int64_t group_wait_ms, std::int64_t now_ms);
  // Deletes every notification of `group_key` still pending (tried or not) and, unless
  // `entries_json` (a JSON array) is empty, adds one holding it, due now. One transaction.
  void replace(const std::string& channel, const std::string& group_key, const std::string& entries_json,
               std::int64_t now_ms);
  // The last change stored for each alarm since `since_ms` ("raised", "cleared", ...), by alarm
  // id; older ones are forgotten.
  std::map<std::uint64_t, std::string> last_said(std::int64_t since_ms);
  // A notification another instance stored and could not deliver (OutboxMirror), due now;
  // returns its id here.
  std::int64_t insert_taken_over(const PendingNotification& n, std::int64_t now_ms);
  // Every pending notification, by id.
  std::vector<PendingNotification> all();
  // The notification due first, if one is due by now.
  std::optional<PendingNotification> next_due(std::int64_t now_ms);
  std::optional<std::int64_t> earliest_attempt_at();
  void remove(std::int64_t id);  // delivered
  void failed(std::int64_t id, std::int64_t next_attempt_at_ms, const std::string& error);
  std::uint64_t count();
  std::optional<std::int64_t> oldest_created_at();
  // Pending notifications created before `before_ms`, oldest first.
  std::vector<PendingNotification> created_before(std::int64_t before_ms);
  // A random name this file got when it was made: notification ids are "<it>-<row id>", unique
  // even if the file is deleted and made again.
  const std::string& file_tag() const { return tag_; }

 private:
  void exec(const char* sql);
  void add_entry(const std::string& channel, const std::string& group_key, const std::string& entry_json,
                 std::int64_t group_wait_ms, std::int64_t now_ms);
  // One new row; returns its id.
  std::int64_t insert(const std::string& channel, const std::string& group_key, std::int64_t created_at_ms,
                      std::int64_t due_ms, const std::string& entries_json);
  // Runs `fn` in one transaction, rolled back if it throws.
  template <class Fn>
  void in_transaction(Fn&& fn);
  std::vector<PendingNotification> select(const char* sql, std::int64_t arg);

  std::filesystem::path file_;
  sqlite3* db_ = nullptr;
  std::string tag_;
};

}  // namespace postwatch::aggregator
