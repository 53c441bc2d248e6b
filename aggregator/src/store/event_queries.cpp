// The store's reads: replay at start-up, the status history, and the event history the
// API serves. They run on the io_context with the read connection (WAL lets them run
// beside the writer), except replay(), which runs before start().
#include "store/batch_row.hpp"
#include "store/event_store.hpp"
#include "store/sqlite_statement.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace postwatch::aggregator {
using sqlite::Statement;
using sqlite::text_col;

std::uint64_t EventStore::replay(const std::function<void(const StoredEventRow&)>& fn) {
  Statement q(write_db_, (std::string(kBatchColumns) + "ORDER BY id").c_str());
  std::uint64_t n = 0;
  StoredEventRow row;
  BatchRow b;
  StoredAgent* who = nullptr;
  while (sqlite3_step(q.get()) == SQLITE_ROW) {
    b.read(q.get(), row);
    if (!who || who->post != row.post || who->agent != row.agent) who = &agent_entry(row.post, row.agent);
    std::uint64_t passed = 0;
    const bool ok = b.intact && decode_stored_batch(b.body, b.summary, name_of_, row, [&](const StoredEventRow& r) {
                      who->insert(r.seq);
                      fn(r);
                      ++passed;
                    });
    n += passed;
    if (!ok) {
      corrupt_batches_ += 1;
      corrupt_events_ += b.summary.count - passed;
      log_->error(
          "store {}: record {} (post '{}', agent '{}', seqs {}-{}) is damaged ({}); {} of its {} event(s) are "
          "lost, everything else is replayed",
          opt_.file.string(), b.id, row.post, row.agent, b.summary.first_seq, b.summary.last_seq,
          b.intact ? "it does not decode" : "checksum mismatch", b.summary.count - passed, b.summary.count);
    }
  }
  committed_events_ = n;
  handed_over_ = n;
  return n;
}

std::uint64_t EventStore::scan_received_since(std::int64_t since_ms,
                                              const std::function<void(const StoredEventRow&)>& fn) {
  // A record's events arrived in one message: its received_at is theirs.
  Statement q(read_db_, (std::string(kBatchColumns) + "WHERE received_at_ms >= ? ORDER BY id").c_str());
  sqlite3_bind_int64(q.get(), 1, since_ms);
  std::uint64_t n = 0;
  StoredEventRow row;
  BatchRow b;
  while (sqlite3_step(q.get()) == SQLITE_ROW) {
    b.read(q.get(), row);
    if (b.intact)
      decode_stored_batch(b.body, b.summary, name_of_, row, [&](const StoredEventRow& r) {
        fn(r);
        ++n;
      });
  }
  return n;
}

std::vector<HistoryPoint> EventStore::latest_history() {
  Statement q(write_db_,
              "SELECT h.at_ms, h.scope, h.id, h.status, h.score FROM history h "
              "JOIN (SELECT scope, id, MAX(at_ms) AS at_ms FROM history GROUP BY scope, id) m "
              "ON h.scope = m.scope AND h.id = m.id AND h.at_ms = m.at_ms");
  std::vector<HistoryPoint> out;
  while (sqlite3_step(q.get()) == SQLITE_ROW) {
    auto scope = parse_status_scope(text_col(q.get(), 1));
    if (!scope) continue;  // a scope this version does not show
    out.push_back({sqlite3_column_int64(q.get(), 0), *scope, text_col(q.get(), 2), parse_status(text_col(q.get(), 3)),
                   sqlite3_column_double(q.get(), 4)});
  }
  return out;
}

std::vector<HistoryPoint> EventStore::query_history(StatusScope scope, const std::string& id, std::int64_t from_ms,
                                                    std::int64_t to_ms, std::size_t limit) {
  Statement q(read_db_,
              "SELECT at_ms, status, score FROM history WHERE scope = ? AND id = ? AND at_ms >= ? AND at_ms <= ? "
              "ORDER BY at_ms LIMIT ?");
  const auto scope_name = to_string(scope);
  sqlite3_bind_text(q.get(), 1, scope_name.data(), static_cast<int>(scope_name.size()), SQLITE_STATIC);
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

std::vector<StrategyReadingRow> EventStore::query_strategy_readings() {
  Statement q(read_db_,
              "SELECT indicator, observed_at_ms, value, post, agent, seq, received_at_ms FROM strategy_readings "
              "ORDER BY indicator, observed_at_ms");
  std::vector<StrategyReadingRow> out;
  while (sqlite3_step(q.get()) == SQLITE_ROW) {
    StrategyReadingRow r;
    r.indicator = text_col(q.get(), 0);
    r.observed_at_ms = sqlite3_column_int64(q.get(), 1);
    r.value = sqlite3_column_double(q.get(), 2);
    r.post = text_col(q.get(), 3);
    r.agent = text_col(q.get(), 4);
    r.seq = static_cast<std::uint64_t>(sqlite3_column_int64(q.get(), 5));
    r.received_at_ms = sqlite3_column_int64(q.get(), 6);
    out.push_back(std::move(r));
  }
  return out;
}

// Newest observed first: records by their newest observation, each decoded, the best
// `limit` kept; it stops at the first record whose newest observation is older than all
// of those kept.
std::vector<StoredEventRow> EventStore::query_events(const EventQuery& eq) {
  Statement q(read_db_,
              (std::string(kBatchColumns) +
               "WHERE post = ? AND max_observed_ms >= ? AND min_observed_ms <= ? ORDER BY max_observed_ms DESC")
                  .c_str());
  sqlite3_bind_text(q.get(), 1, eq.post.c_str(), static_cast<int>(eq.post.size()), SQLITE_STATIC);
  sqlite3_bind_int64(q.get(), 2, eq.from_ms);
  sqlite3_bind_int64(q.get(), 3, eq.to_ms);
  // The heap's top is the worst kept: oldest observed, then the highest (agent, seq).
  auto before = [](const StoredEventRow& a, const StoredEventRow& b) {
    if (a.observed_at_ms != b.observed_at_ms) return a.observed_at_ms > b.observed_at_ms;
    if (a.agent != b.agent) return a.agent < b.agent;
    return a.seq < b.seq;
  };
  std::vector<StoredEventRow> kept;
  if (eq.limit == 0) return kept;
  StoredEventRow row;
  BatchRow b;
  while (sqlite3_step(q.get()) == SQLITE_ROW) {
    b.read(q.get(), row);
    if (kept.size() == eq.limit && b.summary.max_observed_ms < kept.front().observed_at_ms) break;
    if (!b.intact) continue;  // replay reported it
    decode_stored_batch(b.body, b.summary, name_of_, row, [&](const StoredEventRow& r) {
      if (r.observed_at_ms < eq.from_ms || r.observed_at_ms > eq.to_ms) return;
      if (!eq.indicator.empty() && r.indicator != eq.indicator) return;
      if (kept.size() == eq.limit) {
        if (!before(r, kept.front())) return;
        std::pop_heap(kept.begin(), kept.end(), before);
        kept.back() = r;
      } else {
        kept.push_back(r);
      }
      std::push_heap(kept.begin(), kept.end(), before);
    });
  }
  std::sort_heap(kept.begin(), kept.end(), before);
  return kept;
}

}  // namespace postwatch::aggregator
