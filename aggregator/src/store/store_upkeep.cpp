// The store's schema and its upkeep: opening and upgrading a database, the indicator
// codes batch records refer to, retention, and the size the byte cap is held to.
#include "postwatch/catalogue.hpp"
#include "postwatch/crc32c.hpp"
#include "store/event_store.hpp"
#include "store/sqlite_statement.hpp"
#include "store/store_schema.hpp"

#include <spdlog/spdlog.h>

#include <numeric>

namespace postwatch::aggregator {

namespace {
using sqlite::exec;
using sqlite::Statement;
using sqlite::text_col;

bool has_table(sqlite3* db, const char* table) {
  Statement q(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?");
  sqlite3_bind_text(q.get(), 1, table, -1, SQLITE_STATIC);
  return sqlite3_step(q.get()) == SQLITE_ROW;
}

bool has_column(sqlite3* db, const char* table, const char* column) {
  Statement q(db, (std::string("PRAGMA table_info(") + table + ")").c_str());
  while (sqlite3_step(q.get()) == SQLITE_ROW)
    if (std::string_view(reinterpret_cast<const char*>(sqlite3_column_text(q.get(), 1))) == column) return true;
  return false;
}

void add_column_if_missing(sqlite3* db, const char* table, const char* column, const char* type) {
  if (!has_column(db, table, column))
    exec(db, (std::string("ALTER TABLE ") + table + " ADD COLUMN " + column + " " + type).c_str());
}

std::int64_t single_int(sqlite3* db, const char* sql) {
  Statement q(db, sql);
  return sqlite3_step(q.get()) == SQLITE_ROW ? sqlite3_column_int64(q.get(), 0) : 0;
}

// A chunk of retention's work: one short transaction, so commits are not held up long.
constexpr int kPruneChunkRows = 20000;

}  // namespace

void EventStore::insert_row(sqlite3_stmt* st, const std::string& post, const std::string& agent,
                            const StoredBatchSummary& s, std::string_view body) {
  sqlite3_bind_text(st, 1, post.c_str(), static_cast<int>(post.size()), SQLITE_STATIC);
  sqlite3_bind_text(st, 2, agent.c_str(), static_cast<int>(agent.size()), SQLITE_STATIC);
  sqlite3_bind_int64(st, 3, static_cast<sqlite3_int64>(s.first_seq));
  sqlite3_bind_int64(st, 4, static_cast<sqlite3_int64>(s.last_seq));
  sqlite3_bind_int64(st, 5, s.count);
  sqlite3_bind_int64(st, 6, s.min_observed_ms);
  sqlite3_bind_int64(st, 7, s.max_observed_ms);
  sqlite3_bind_int64(st, 8, s.received_at_ms);
  sqlite3_bind_int64(st, 9, crc32c(body.data(), body.size()));
  sqlite3_bind_blob(st, 10, body.data(), static_cast<int>(body.size()), SQLITE_STATIC);
  const int rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) throw std::runtime_error(sqlite3_errmsg(sqlite3_db_handle(st)));
}

const char* EventStore::insert_sql() {
  return "INSERT INTO event_batches(post, agent, first_seq, last_seq, count, min_observed_ms, max_observed_ms, "
         "received_at_ms, crc, body) VALUES(?,?,?,?,?,?,?,?,?,?)";
}

void EventStore::open_schema() {
  exec(write_db_, opt_.sync == StoreSync::Full ? "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                                               : "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;");
  exec(write_db_, kStoreSchema);
  load_indicator_codes();
  if (has_table(write_db_, "events")) convert_row_store();
}

void EventStore::load_indicator_codes() {
  name_of_.assign(1, std::string());  // code 0: an unknown indicator, named in the record
  {
    Statement q(write_db_, "SELECT code, id FROM indicator_codes");
    while (sqlite3_step(q.get()) == SQLITE_ROW) {
      auto code = static_cast<std::size_t>(sqlite3_column_int64(q.get(), 0));
      if (code == 0 || code > (1u << 24))
        throw std::runtime_error("indicator_codes holds code " + std::to_string(code));
      if (name_of_.size() <= code) name_of_.resize(code + 1);
      name_of_[code] = text_col(q.get(), 1);
    }
  }
  std::unordered_map<std::string_view, std::uint32_t> by_name;
  for (std::size_t c = 1; c < name_of_.size(); ++c)
    if (!name_of_[c].empty()) by_name.emplace(name_of_[c], static_cast<std::uint32_t>(c));
  const auto& indicators = catalogue_.indicators();
  code_of_.assign(indicators.size(), 0);
  std::vector<std::size_t> missing;
  for (std::size_t i = 0; i < indicators.size(); ++i) {
    auto it = by_name.find(indicators[i].id);
    if (it != by_name.end())
      code_of_[i] = it->second;
    else
      missing.push_back(i);
  }
  if (missing.empty()) return;
  exec(write_db_, "BEGIN");
  Statement ins(write_db_, "INSERT INTO indicator_codes(code, id) VALUES(?, ?)");
  for (auto i : missing) {
    auto code = static_cast<std::uint32_t>(name_of_.size());
    name_of_.push_back(indicators[i].id);
    code_of_[i] = code;
    sqlite3_bind_int64(ins.get(), 1, code);
    sqlite3_bind_text(ins.get(), 2, indicators[i].id.c_str(), -1, SQLITE_STATIC);
    if (sqlite3_step(ins.get()) != SQLITE_DONE) throw std::runtime_error(sqlite3_errmsg(write_db_));
    sqlite3_reset(ins.get());
  }
  exec(write_db_, "COMMIT");
}

// A store from before batch records kept one row per event: each agent's rows become
// records of up to 256 events, in one transaction, and the old table goes.
void EventStore::convert_row_store() {
  add_column_if_missing(write_db_, "events", "clock_correction_ms", "INTEGER NOT NULL DEFAULT 0");
  add_column_if_missing(write_db_, "events", "refused", "TEXT");
  const auto total = single_int(write_db_, "SELECT COUNT(*) FROM events");
  log_->info("store {}: converting {} stored event(s) to batch records", opt_.file.string(), total);
  exec(write_db_, "BEGIN");
  try {
    // Every indicator id the old rows name gets a code, catalogue or not.
    {
      Statement names(write_db_, "SELECT DISTINCT indicator FROM events WHERE refused IS NOT 'unknown_indicator'");
      Statement ins(write_db_, "INSERT INTO indicator_codes(code, id) VALUES(?, ?)");
      while (sqlite3_step(names.get()) == SQLITE_ROW) {
        auto id = text_col(names.get(), 0);
        if (std::find(name_of_.begin() + 1, name_of_.end(), id) != name_of_.end()) continue;
        sqlite3_bind_int64(ins.get(), 1, static_cast<sqlite3_int64>(name_of_.size()));
        sqlite3_bind_text(ins.get(), 2, id.c_str(), -1, SQLITE_TRANSIENT);
        if (sqlite3_step(ins.get()) != SQLITE_DONE) throw std::runtime_error(sqlite3_errmsg(write_db_));
        sqlite3_reset(ins.get());
        name_of_.push_back(id);
      }
    }
    // Records made here carry codes directly: an identity map from "index" to code.
    std::vector<std::uint32_t> identity(name_of_.size());
    std::iota(identity.begin(), identity.end(), 0u);
    std::unordered_map<std::string, std::uint32_t> code;
    for (std::size_t c = 1; c < name_of_.size(); ++c) code.emplace(name_of_[c], static_cast<std::uint32_t>(c));

    Statement q(write_db_,
                "SELECT post, agent, seq, indicator, observed_at_ms, received_at_ms, kind, number, text, late, "
                "clock_correction_ms, refused FROM events ORDER BY post, agent, seq");
    Statement ins(write_db_, insert_sql());
    std::string post, agent, body;
    std::vector<PersistedEvent> events;
    std::vector<std::string> texts, unknown;  // what the events' views point into
    auto flush_group = [&] {
      if (events.empty()) return;
      for (std::size_t i = 0; i < events.size(); ++i) {
        events[i].text = texts[i];
        events[i].unknown_indicator = unknown[i];
      }
      body.clear();
      auto s = encode_stored_batch(events, identity, body);
      insert_row(ins.get(), post, agent, s, body);
      events.clear();
      texts.clear();
      unknown.clear();
    };
    while (sqlite3_step(q.get()) == SQLITE_ROW) {
      auto p = text_col(q.get(), 0), a = text_col(q.get(), 1);
      if (p != post || a != agent || events.size() == 256) {
        flush_group();
        post = std::move(p);
        agent = std::move(a);
      }
      PersistedEvent e;
      e.seq = static_cast<std::uint64_t>(sqlite3_column_int64(q.get(), 2));
      auto indicator = text_col(q.get(), 3);
      e.observed_at_ms = sqlite3_column_int64(q.get(), 4);
      e.received_at_ms = sqlite3_column_int64(q.get(), 5);
      e.kind = static_cast<ValueKind>(sqlite3_column_int(q.get(), 6) & 0x7);
      e.number = sqlite3_column_double(q.get(), 7);
      texts.push_back(text_col(q.get(), 8));
      e.late = sqlite3_column_int(q.get(), 9) != 0;
      e.clock_correction_ms = sqlite3_column_int64(q.get(), 10);
      e.refused = parse_event_refusal(text_col(q.get(), 11)).value_or(EventRefusal::None);
      if (e.refused == EventRefusal::UnknownIndicator) {
        unknown.push_back(std::move(indicator));
      } else {
        e.indicator = code.at(indicator);
        unknown.emplace_back();
      }
      events.push_back(e);
    }
    flush_group();
    exec(write_db_, "DROP TABLE events");
    exec(write_db_, "COMMIT");
  } catch (...) {
    sqlite3_exec(write_db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  log_->info("store {}: {} event(s) converted", opt_.file.string(), total);
}

void EventStore::measure_size() {
  try {
    auto pages = single_int(write_db_, "PRAGMA page_count") - single_int(write_db_, "PRAGMA freelist_count");
    used_bytes_ =
        static_cast<std::uint64_t>(std::max<std::int64_t>(pages, 0) * single_int(write_db_, "PRAGMA page_size"));
  } catch (const std::exception& e) {
    log_->warn("store {}: cannot read its size: {}", opt_.file.string(), e.what());
  }
}

// Removes, oldest first and a chunk at a time, what the retention allows. Rows are in
// received order (append), so the oldest are the lowest ids. Returns whether more is due.
bool EventStore::prune(std::int64_t now_ms, bool by_age) {
  const auto started = std::chrono::steady_clock::now();
  bool more = false;
  try {
    enum class Pruned { Nothing, Some, SomeMaybeMore };
    auto delete_below = [&](std::int64_t received_before) {
      // The first chunk of rows, stopping at the first one received at or after the limit;
      // a row out of order (older than one before it) waits for the ones before it.
      Statement q(write_db_, "SELECT id, received_at_ms, count FROM event_batches ORDER BY id LIMIT ?");
      sqlite3_bind_int(q.get(), 1, kPruneChunkRows);
      std::int64_t upto = -1;
      std::uint64_t events = 0;
      int rows = 0;
      while (sqlite3_step(q.get()) == SQLITE_ROW) {
        ++rows;
        if (sqlite3_column_int64(q.get(), 1) >= received_before) break;
        upto = sqlite3_column_int64(q.get(), 0);
        events += static_cast<std::uint64_t>(sqlite3_column_int64(q.get(), 2));
      }
      if (upto < 0) return Pruned::Nothing;
      Statement del(write_db_, "DELETE FROM event_batches WHERE id <= ?");
      sqlite3_bind_int64(del.get(), 1, upto);
      if (sqlite3_step(del.get()) != SQLITE_DONE) throw std::runtime_error(sqlite3_errmsg(write_db_));
      events_pruned_ += events;
      return rows == kPruneChunkRows ? Pruned::SomeMaybeMore : Pruned::Some;
    };
    const auto budget = std::chrono::milliseconds(250);
    if (by_age) {
      while (delete_below(now_ms - opt_.event_retention_ms) == Pruned::SomeMaybeMore)
        if (std::chrono::steady_clock::now() - started > budget) return true;
      Statement h(write_db_, "DELETE FROM history WHERE at_ms < ?");
      sqlite3_bind_int64(h.get(), 1, now_ms - opt_.history_retention_ms);
      sqlite3_step(h.get());
      Statement al(write_db_, "DELETE FROM alarms WHERE json_extract(body, '$.cleared_at_ms') BETWEEN 1 AND ?");
      sqlite3_bind_int64(al.get(), 1, now_ms - opt_.history_retention_ms);
      sqlite3_step(al.get());
    }
    if (opt_.max_bytes) {
      measure_size();
      while (used_bytes_ > opt_.max_bytes) {
        const bool removed = delete_below(now_ms - opt_.keep_at_least_ms) != Pruned::Nothing;
        measure_size();
        if (!removed) {
          if (std::chrono::steady_clock::now() >= next_cap_warning_) {
            log_->warn(
                "store {}: {} MB in use, over the {} MB cap, but every event left was received within the last {} "
                "h, which a restart replays into the rollups; nothing more is removed (give the store more room)",
                opt_.file.string(), used_bytes_ / 1000000, opt_.max_bytes / 1000000, opt_.keep_at_least_ms / 3600000);
            next_cap_warning_ = std::chrono::steady_clock::now() + std::chrono::hours(1);
          }
          break;
        }
        if (std::chrono::steady_clock::now() - started > budget) {
          more = true;
          break;
        }
      }
    }
  } catch (const std::exception& e) {
    log_->warn("store {}: pruning failed: {}", opt_.file.string(), e.what());
  }
  return more;
}

}  // namespace postwatch::aggregator
