// The store's reads: replay at start-up and take-over, the status history, and the
// event history the API serves. They run on the io_context with the read connection
// (WAL lets them run beside the writer), except replay(), which runs before start().
#include "store/event_store.hpp"
#include "store/sqlite_statement.hpp"

namespace postwatch::aggregator {
using sqlite::Statement;
using sqlite::text_col;

namespace {
std::uint64_t read_events(Statement& q, const std::function<void(const StoredEventRow&)>& fn) {
  std::uint64_t n = 0;
  StoredEventRow row;
  while (sqlite3_step(q.get()) == SQLITE_ROW) {
    row.post = text_col(q.get(), 0);
    row.agent = text_col(q.get(), 1);
    row.seq = static_cast<std::uint64_t>(sqlite3_column_int64(q.get(), 2));
    row.indicator = text_col(q.get(), 3);
    row.observed_at_ms = sqlite3_column_int64(q.get(), 4);
    row.received_at_ms = sqlite3_column_int64(q.get(), 5);
    row.kind = static_cast<ValueKind>(sqlite3_column_int(q.get(), 6));
    row.number = sqlite3_column_double(q.get(), 7);
    row.text = text_col(q.get(), 8);
    row.late = sqlite3_column_int(q.get(), 9) != 0;
    row.clock_correction_ms = sqlite3_column_int64(q.get(), 10);
    row.refused = parse_event_refusal(text_col(q.get(), 11)).value_or(EventRefusal::None);
    fn(row);
    ++n;
  }
  return n;
}
constexpr const char* kEventColumns =
    "SELECT post, agent, seq, indicator, observed_at_ms, received_at_ms, kind, number, text, late, "
    "clock_correction_ms, refused FROM events ";
}  // namespace

std::uint64_t EventStore::replay(const std::function<void(const StoredEventRow&)>& fn) {
  Statement q(write_db_, (std::string(kEventColumns) + "ORDER BY post, agent, seq").c_str());
  std::uint64_t n = read_events(q, fn);
  committed_events_ = n;
  handed_over_ = n;
  return n;
}

std::uint64_t EventStore::replay_post(const std::string& post, const std::function<void(const StoredEventRow&)>& fn) {
  Statement q(read_db_, (std::string(kEventColumns) + "WHERE post = ? ORDER BY agent, seq").c_str());
  sqlite3_bind_text(q.get(), 1, post.c_str(), static_cast<int>(post.size()), SQLITE_STATIC);
  return read_events(q, fn);
}

std::vector<HistoryPoint> EventStore::latest_history() {
  Statement q(write_db_,
              "SELECT h.at_ms, h.scope, h.id, h.status, h.score FROM history h "
              "JOIN (SELECT scope, id, MAX(at_ms) AS at_ms FROM history GROUP BY scope, id) m "
              "ON h.scope = m.scope AND h.id = m.id AND h.at_ms = m.at_ms");
  std::vector<HistoryPoint> out;
  while (sqlite3_step(q.get()) == SQLITE_ROW)
    out.push_back({sqlite3_column_int64(q.get(), 0), text_col(q.get(), 1), text_col(q.get(), 2),
                   parse_status(text_col(q.get(), 3)), sqlite3_column_double(q.get(), 4)});
  return out;
}

std::vector<HistoryPoint> EventStore::query_history(const std::string& scope, const std::string& id,
                                                    std::int64_t from_ms, std::int64_t to_ms, std::size_t limit) {
  Statement q(read_db_,
              "SELECT at_ms, status, score FROM history WHERE scope = ? AND id = ? AND at_ms >= ? AND at_ms <= ? "
              "ORDER BY at_ms LIMIT ?");
  sqlite3_bind_text(q.get(), 1, scope.c_str(), static_cast<int>(scope.size()), SQLITE_STATIC);
  sqlite3_bind_text(q.get(), 2, id.c_str(), static_cast<int>(id.size()), SQLITE_STATIC);
  sqlite3_bind_int64(q.get(), 3, from_ms);
  sqlite3_bind_int64(q.get(), 4, to_ms);
  sqlite3_bind_int64(q.get(), 5, static_cast<sqlite3_int64>(limit));
  std::vector<HistoryPoint> out;
  while (sqlite3_step(q.get()) == SQLITE_ROW)
    out.push_back({sqlite3_column_int64(q.get(), 0), scope, id, parse_status(text_col(q.get(), 1)),
                   sqlite3_column_double(q.get(), 2)});
  return out;
}

std::vector<StoredEventRow> EventStore::query_events(const EventQuery& eq) {
  std::string sql = std::string(kEventColumns) + "WHERE post = ? AND observed_at_ms >= ? AND observed_at_ms <= ? ";
  if (!eq.indicator.empty()) sql += "AND indicator = ? ";
  sql += "ORDER BY observed_at_ms DESC, agent, seq LIMIT ?";
  Statement q(read_db_, sql.c_str());
  int i = 1;
  sqlite3_bind_text(q.get(), i++, eq.post.c_str(), static_cast<int>(eq.post.size()), SQLITE_STATIC);
  sqlite3_bind_int64(q.get(), i++, eq.from_ms);
  sqlite3_bind_int64(q.get(), i++, eq.to_ms);
  if (!eq.indicator.empty())
    sqlite3_bind_text(q.get(), i++, eq.indicator.c_str(), static_cast<int>(eq.indicator.size()), SQLITE_STATIC);
  sqlite3_bind_int64(q.get(), i, static_cast<sqlite3_int64>(eq.limit));
  std::vector<StoredEventRow> out;
  read_events(q, [&](const StoredEventRow& r) { out.push_back(r); });
  return out;
}

}  // namespace postwatch::aggregator
