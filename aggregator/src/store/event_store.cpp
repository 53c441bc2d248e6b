#include "store/event_store.hpp"

#include "postwatch/catalogue.hpp"
#include "postwatch/clock.hpp"
#include "rollup/board_image.hpp"
#include "store/sqlite_statement.hpp"

#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <nlohmann/json.hpp>

#include <stdexcept>

namespace postwatch::aggregator {
using nlohmann::json;

namespace {
using sqlite::exec;
using sqlite::Statement;
using sqlite::text_col;

const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS events(
  agent TEXT NOT NULL, seq INTEGER NOT NULL, post TEXT NOT NULL, indicator TEXT NOT NULL,
  observed_at_ms INTEGER NOT NULL, received_at_ms INTEGER NOT NULL, kind INTEGER NOT NULL,
  number REAL NOT NULL, text TEXT, late INTEGER NOT NULL DEFAULT 0,
  clock_correction_ms INTEGER NOT NULL DEFAULT 0, refused TEXT,
  PRIMARY KEY(post, agent, seq)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_by_received ON events(received_at_ms);
CREATE TABLE IF NOT EXISTS history(
  at_ms INTEGER NOT NULL, scope TEXT NOT NULL, id TEXT NOT NULL, status TEXT NOT NULL, score REAL NOT NULL);
CREATE INDEX IF NOT EXISTS history_by_id ON history(scope, id, at_ms);
CREATE TABLE IF NOT EXISTS alarms(id INTEGER PRIMARY KEY, body TEXT NOT NULL);
)sql";

sqlite3* open_db(const std::filesystem::path& file, bool read_only) {
  sqlite3* db = nullptr;
  int flags = read_only ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  if (sqlite3_open_v2(file.c_str(), &db, flags | SQLITE_OPEN_NOMUTEX, nullptr) != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    throw std::runtime_error("cannot open store " + file.string() + ": " + msg);
  }
  sqlite3_busy_timeout(db, 5000);
  return db;
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

}  // namespace

EventStore::EventStore(StoreOptions options, const IndicatorCatalogue& catalogue, std::shared_ptr<spdlog::logger> log)
    : opt_(std::move(options)), catalogue_(catalogue), log_(std::move(log)) {
  std::error_code ec;
  if (opt_.file.has_parent_path()) std::filesystem::create_directories(opt_.file.parent_path(), ec);
  write_db_ = open_db(opt_.file, false);
  try {
    exec(write_db_, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;");
    exec(write_db_, kSchema);
    // Stores from before time correction: the columns it added (docs/aggregator.md, "Time").
    add_column_if_missing(write_db_, "events", "clock_correction_ms", "INTEGER NOT NULL DEFAULT 0");
    add_column_if_missing(write_db_, "events", "refused", "TEXT");
  } catch (const std::exception& e) {
    sqlite3_close(write_db_);
    throw std::runtime_error("cannot initialise store " + opt_.file.string() + ": " + e.what());
  }
  read_db_ = open_db(opt_.file, true);
}

EventStore::~EventStore() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  if (!pending_.events.empty() || !pending_.history.empty() || !pending_.alarms.empty()) commit(pending_, agents_);
  sqlite3_close(read_db_);
  sqlite3_close(write_db_);
}

std::vector<Alarm> EventStore::load_alarms() {
  Statement q(write_db_, "SELECT body FROM alarms ORDER BY id");
  std::vector<Alarm> out;
  while (sqlite3_step(q.get()) == SQLITE_ROW) {
    auto j = json::parse(text_col(q.get(), 0), nullptr, false);
    if (!j.is_discarded()) out.push_back(alarm_from_json(j));
  }
  return out;
}

void EventStore::start() {
  if (!writer_.joinable()) writer_ = std::thread([this] { writer_loop(); });
}

void EventStore::register_agent(std::uint32_t id, std::string_view post, std::string_view agent) {
  std::lock_guard lk(mu_);
  if (agents_.size() <= id) agents_.resize(id + 1);
  agents_[id] = {std::string(post), std::string(agent)};
  ++agents_version_;
}

void EventStore::persist(std::span<const PersistedEvent> events) {
  std::lock_guard lk(mu_);
  for (const auto& e : events) {
    pending_.events.push_back({e, std::string(e.text), std::string(e.unknown_indicator)});
    pending_.events.back().e.text = {};
    pending_.events.back().e.unknown_indicator = {};
  }
  handed_over_ += events.size();
  ++handed_seqno_;
}

void EventStore::record_history(const HistoryPoint& p) {
  std::lock_guard lk(mu_);
  pending_.history.push_back(p);
  ++handed_seqno_;
}

void EventStore::save_alarm(const Alarm& a) {
  std::lock_guard lk(mu_);
  pending_.alarms.emplace_back(a.id, alarm_to_json(a).dump());
  ++handed_seqno_;
}

bool EventStore::flush(std::chrono::milliseconds timeout) {
  std::unique_lock lk(mu_);
  auto target = handed_seqno_;
  cv_.notify_all();
  return cv_.wait_for(lk, timeout, [&] { return committed_seqno_ >= target; });
}

void EventStore::writer_loop() {
  // A spare that grew past this after a backlog is released rather than kept for good.
  constexpr std::size_t kMaxKeptEvents = 1 << 18;
  auto next_prune = std::chrono::steady_clock::now();
  std::unique_lock lk(mu_);
  while (true) {
    cv_.wait_for(lk, opt_.commit_interval, [&] { return stopping_ || handed_seqno_ > committed_seqno_ + 64; });
    Pending batch;
    std::swap(batch, pending_);
    std::swap(pending_, spare_);  // persist() keeps appending into the spare's capacity
    auto seqno = handed_seqno_;
    if (writer_agents_version_ != agents_version_) {
      writer_agents_ = agents_;
      writer_agents_version_ = agents_version_;
    }
    bool stop = stopping_;
    lk.unlock();
    bool ok = true;
    if (!batch.empty()) ok = commit(batch, writer_agents_);
    if (std::chrono::steady_clock::now() >= next_prune) {
      prune(now_utc_ms());
      next_prune = std::chrono::steady_clock::now() + std::chrono::hours(1);
    }
    if (ok) {
      // Destroying the rows (and freeing an oversized buffer) happens here, not under mu_.
      batch.clear();
      if (batch.events.capacity() > kMaxKeptEvents) batch = Pending{};
    }
    lk.lock();
    if (ok) {
      committed_seqno_ = seqno;
      if (spare_.events.capacity() < batch.events.capacity()) std::swap(spare_, batch);
    } else {
      // Keep the batch (disk full, I/O error): it goes first in the next commit.
      batch.events.insert(batch.events.end(), std::make_move_iterator(pending_.events.begin()),
                          std::make_move_iterator(pending_.events.end()));
      batch.history.insert(batch.history.end(), pending_.history.begin(), pending_.history.end());
      batch.alarms.insert(batch.alarms.end(), pending_.alarms.begin(), pending_.alarms.end());
      pending_ = std::move(batch);
    }
    cv_.notify_all();
    if (stop) break;
    if (!ok) cv_.wait_for(lk, std::chrono::seconds(1), [&] { return stopping_; });
  }
}

bool EventStore::commit(Pending& batch, const std::vector<std::pair<std::string, std::string>>& agents) {
  try {
    exec(write_db_, "BEGIN");
    {
      Statement ins(write_db_,
                    "INSERT OR IGNORE INTO events(agent, seq, post, indicator, observed_at_ms, received_at_ms, kind, "
                    "number, text, late, clock_correction_ms, refused) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)");
      for (const auto& pe : batch.events) {
        const auto& e = pe.e;
        if (e.agent >= agents.size() || agents[e.agent].first.empty()) {
          // Ingest registers every agent before handing over its events: this is a bug, and
          // it must not pass as a commit.
          throw std::logic_error("event of agent id " + std::to_string(e.agent) + " that was never registered");
        }
        const auto& [post, agent] = agents[e.agent];
        const std::string& indicator = e.refused == EventRefusal::UnknownIndicator
                                           ? pe.unknown_indicator
                                           : catalogue_.indicators()[e.indicator].id;
        auto* st = ins.get();
        sqlite3_bind_text(st, 1, agent.c_str(), static_cast<int>(agent.size()), SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, static_cast<sqlite3_int64>(e.seq));
        sqlite3_bind_text(st, 3, post.c_str(), static_cast<int>(post.size()), SQLITE_STATIC);
        sqlite3_bind_text(st, 4, indicator.c_str(), static_cast<int>(indicator.size()), SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, e.observed_at_ms);
        sqlite3_bind_int64(st, 6, e.received_at_ms);
        sqlite3_bind_int(st, 7, static_cast<int>(e.kind));
        sqlite3_bind_double(st, 8, e.number);
        if (pe.text.empty())
          sqlite3_bind_null(st, 9);
        else
          sqlite3_bind_text(st, 9, pe.text.c_str(), static_cast<int>(pe.text.size()), SQLITE_STATIC);
        sqlite3_bind_int(st, 10, e.late ? 1 : 0);
        sqlite3_bind_int64(st, 11, e.clock_correction_ms);
        if (e.refused == EventRefusal::None) {
          sqlite3_bind_null(st, 12);
        } else {
          auto why = to_string(e.refused);
          sqlite3_bind_text(st, 12, why.data(), static_cast<int>(why.size()), SQLITE_STATIC);
        }
        if (sqlite3_step(st) != SQLITE_DONE) throw std::runtime_error(sqlite3_errmsg(write_db_));
        sqlite3_reset(st);
      }
      Statement hist(write_db_, "INSERT INTO history(at_ms, scope, id, status, score) VALUES(?,?,?,?,?)");
      for (const auto& h : batch.history) {
        auto* st = hist.get();
        auto status = to_string(h.status);
        sqlite3_bind_int64(st, 1, h.at_ms);
        sqlite3_bind_text(st, 2, h.scope.c_str(), static_cast<int>(h.scope.size()), SQLITE_STATIC);
        sqlite3_bind_text(st, 3, h.id.c_str(), static_cast<int>(h.id.size()), SQLITE_STATIC);
        sqlite3_bind_text(st, 4, status.data(), static_cast<int>(status.size()), SQLITE_STATIC);
        sqlite3_bind_double(st, 5, h.score);
        if (sqlite3_step(st) != SQLITE_DONE) throw std::runtime_error(sqlite3_errmsg(write_db_));
        sqlite3_reset(st);
      }
      Statement alarm(write_db_, "INSERT OR REPLACE INTO alarms(id, body) VALUES(?,?)");
      for (const auto& [id, body] : batch.alarms) {
        auto* st = alarm.get();
        sqlite3_bind_int64(st, 1, static_cast<sqlite3_int64>(id));
        sqlite3_bind_text(st, 2, body.c_str(), static_cast<int>(body.size()), SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE) throw std::runtime_error(sqlite3_errmsg(write_db_));
        sqlite3_reset(st);
      }
    }
    exec(write_db_, "COMMIT");
    committed_events_ += batch.events.size();
    return true;
  } catch (const std::exception& e) {
    sqlite3_exec(write_db_, "ROLLBACK", nullptr, nullptr, nullptr);
    write_errors_ += 1;
    log_->error("store {}: commit of {} event(s) failed, kept in memory and retried: {}", opt_.file.string(),
                batch.events.size(), e.what());
    return false;
  }
}

void EventStore::prune(std::int64_t now_ms) {
  try {
    Statement ev(write_db_, "DELETE FROM events WHERE received_at_ms < ?");
    sqlite3_bind_int64(ev.get(), 1, now_ms - opt_.event_retention_ms);
    sqlite3_step(ev.get());
    Statement h(write_db_, "DELETE FROM history WHERE at_ms < ?");
    sqlite3_bind_int64(h.get(), 1, now_ms - opt_.history_retention_ms);
    sqlite3_step(h.get());
    Statement al(write_db_, "DELETE FROM alarms WHERE json_extract(body, '$.cleared_at_ms') BETWEEN 1 AND ?");
    sqlite3_bind_int64(al.get(), 1, now_ms - opt_.history_retention_ms);
    sqlite3_step(al.get());
  } catch (const std::exception& e) {
    log_->warn("store {}: pruning failed: {}", opt_.file.string(), e.what());
  }
}

}  // namespace postwatch::aggregator
