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

}  // namespace

EventStore::EventStore(StoreOptions options, const IndicatorCatalogue& catalogue, std::shared_ptr<spdlog::logger> log)
    : opt_(std::move(options)), catalogue_(catalogue), log_(std::move(log)) {
  std::error_code ec;
  if (opt_.file.has_parent_path()) std::filesystem::create_directories(opt_.file.parent_path(), ec);
  write_db_ = open_db(opt_.file, false);
  try {
    open_schema();
  } catch (const std::exception& e) {
    sqlite3_close(write_db_);
    throw std::runtime_error("cannot initialise store " + opt_.file.string() + ": " + e.what());
  }
  read_db_ = open_db(opt_.file, true);
  measure_size();
}

EventStore::~EventStore() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  if (!pending_.empty()) commit(pending_);
  sqlite3_close(read_db_);
  sqlite3_close(write_db_);
}

std::vector<Alarm> EventStore::load_alarms() {
  Statement q(write_db_, "SELECT body FROM alarms ORDER BY id");
  std::vector<Alarm> out;
  while (sqlite3_step(q.get()) == SQLITE_ROW) {
    auto j = json::parse(text_col(q.get(), 0), nullptr, false);
    if (j.is_discarded()) continue;
    if (auto a = alarm_from_json(j)) out.push_back(std::move(*a));
  }
  return out;
}

std::vector<std::string> EventStore::load_silences() {
  Statement q(write_db_, "SELECT body FROM silences ORDER BY id");
  std::vector<std::string> out;
  while (sqlite3_step(q.get()) == SQLITE_ROW) out.push_back(text_col(q.get(), 0));
  return out;
}

std::vector<std::pair<std::string, std::string>> EventStore::load_trust_records() {
  Statement q(write_db_, "SELECT key, body FROM trust_records ORDER BY key");
  std::vector<std::pair<std::string, std::string>> out;
  while (sqlite3_step(q.get()) == SQLITE_ROW) out.emplace_back(text_col(q.get(), 0), text_col(q.get(), 1));
  return out;
}

void EventStore::start() {
  if (!writer_.joinable()) writer_ = std::thread([this] { writer_loop(); });
}

bool EventStore::StoredAgent::insert(std::uint64_t seq) {
  // In order, the common case: extend the last run.
  if (!runs.empty()) {
    auto last = std::prev(runs.end());
    if (seq == last->second + 1) {
      last->second = seq;
      return true;
    }
    if (seq >= last->first && seq <= last->second) return false;
  }
  auto next = runs.upper_bound(seq);
  if (next != runs.begin()) {
    auto prev = std::prev(next);
    if (seq <= prev->second) return false;
    if (seq == prev->second + 1) {
      prev->second = seq;
      if (next != runs.end() && next->first == seq + 1) {
        prev->second = next->second;
        runs.erase(next);
      }
      return true;
    }
  }
  if (next != runs.end() && next->first == seq + 1) {
    auto last = next->second;
    runs.erase(next);
    runs.emplace(seq, last);
  } else {
    runs.emplace(seq, seq);
  }
  // Memory bound: holes ingest gave up on never fill; forget the lowest one.
  constexpr std::size_t kMaxRuns = 1024;
  if (runs.size() > kMaxRuns) {
    auto first = runs.begin();
    auto second = std::next(first);
    auto end = second->second;
    runs.erase(second);
    first->second = end;
  }
  return true;
}

EventStore::StoredAgent& EventStore::agent_entry(std::string_view post, std::string_view agent) {
  std::string key;
  key.reserve(post.size() + agent.size() + 1);
  key.append(post).push_back('\0');
  key.append(agent);
  auto& slot = agents_by_name_[key];
  if (!slot) slot = std::make_unique<StoredAgent>(StoredAgent{std::string(post), std::string(agent), {}});
  return *slot;
}

void EventStore::register_agent(std::uint32_t id, std::string_view post, std::string_view agent) {
  if (agents_.size() <= id) agents_.resize(id + 1, nullptr);
  agents_[id] = &agent_entry(post, agent);
}

void EventStore::persist(std::span<const PersistedEvent> events) {
  // Runs of one agent's events (ingest hands over one agent's message at a time), each
  // without the seqs this store holds already, encoded here on the io thread: the writer
  // only inserts rows.
  std::size_t i = 0;
  while (i < events.size()) {
    const auto id = events[i].agent;
    StoredAgent* who = id < agents_.size() ? agents_[id] : nullptr;
    new_events_.clear();
    for (; i < events.size() && events[i].agent == id; ++i)
      if (who && who->insert(events[i].seq)) new_events_.push_back(events[i]);
    if (!who) {
      // Ingest registers every agent before handing over its events: this is a bug.
      write_errors_ += 1;
      log_->error("store {}: events of agent id {}, which was never registered, not stored", opt_.file.string(), id);
      continue;
    }
    if (new_events_.empty()) continue;
    PendingBatch b;
    b.who = who;
    b.summary = encode_stored_batch(new_events_, code_of_, b.body);
    std::vector<StrategyReadingRow> readings;
    for (const auto& e : new_events_)
      if (e.refused == EventRefusal::None && catalogue_.indicators()[e.indicator].reported_by == Reporter::Ministry)
        readings.push_back({catalogue_.indicators()[e.indicator].id, who->post, who->agent, e.observed_at_ms,
                            e.received_at_ms, e.number, e.seq});
    std::lock_guard lk(mu_);
    for (auto& r : readings) pending_.readings.push_back(std::move(r));
    pending_.events += new_events_.size();
    pending_.batches.push_back(std::move(b));
    handed_over_ += new_events_.size();
    ++handed_seqno_;
  }
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

void EventStore::keep_strategy_reading(StrategyReadingRow r) {
  std::lock_guard lk(mu_);
  pending_.readings.push_back(std::move(r));
  ++handed_seqno_;
}

void EventStore::save_trust_record(std::string key, std::string body) {
  std::lock_guard lk(mu_);
  pending_.trust.emplace_back(std::move(key), std::move(body));
  ++handed_seqno_;
}

void EventStore::save_silence(std::uint64_t id, std::string body) {
  std::lock_guard lk(mu_);
  pending_.silences.emplace_back(id, std::move(body));
  ++handed_seqno_;
}

std::string EventStore::failure() const {
  std::lock_guard lk(failure_mu_);
  return failure_;
}

std::uint64_t EventStore::units_handed_over() const {
  std::lock_guard lk(mu_);
  return handed_seqno_;
}

bool EventStore::flush(std::chrono::milliseconds timeout) {
  std::unique_lock lk(mu_);
  auto target = handed_seqno_;
  cv_.notify_all();
  return cv_.wait_for(lk, timeout, [&] { return committed_seqno_ >= target; });
}

void EventStore::writer_loop() {
  auto next_prune = std::chrono::steady_clock::now();
  auto next_size_check = next_prune;
  std::unique_lock lk(mu_);
  while (true) {
    cv_.wait_for(lk, opt_.commit_interval, [&] { return stopping_ || handed_seqno_ > committed_seqno_ + 64; });
    Pending batch;
    std::swap(batch, pending_);
    auto seqno = handed_seqno_;
    bool stop = stopping_;
    lk.unlock();
    bool ok = true;
    if (!batch.empty()) ok = commit(batch);
    const auto now = std::chrono::steady_clock::now();
    if (now >= next_size_check) {
      measure_size();
      const bool by_age = now >= next_prune;
      bool more = false;
      if (by_age || (opt_.max_bytes && used_bytes_ > opt_.max_bytes)) more = prune(now_utc_ms(), by_age);
      if (by_age) next_prune = more ? now : now + std::chrono::hours(1);
      // Retention left work: the next round after this commit, not in a minute.
      next_size_check = more ? now : now + std::chrono::minutes(1);
    }
    // Destroying the records (and their memory) happens here, not under mu_.
    if (ok) batch = Pending{};
    lk.lock();
    if (ok) {
      committed_seqno_ = seqno;
      committed_units_ = seqno;
    } else {
      // Keep the batch (disk full, I/O error): it goes first in the next commit.
      batch.batches.insert(batch.batches.end(), std::make_move_iterator(pending_.batches.begin()),
                           std::make_move_iterator(pending_.batches.end()));
      batch.events += pending_.events;
      batch.history.insert(batch.history.end(), pending_.history.begin(), pending_.history.end());
      batch.alarms.insert(batch.alarms.end(), pending_.alarms.begin(), pending_.alarms.end());
      batch.silences.insert(batch.silences.end(), pending_.silences.begin(), pending_.silences.end());
      batch.readings.insert(batch.readings.end(), pending_.readings.begin(), pending_.readings.end());
      batch.trust.insert(batch.trust.end(), pending_.trust.begin(), pending_.trust.end());
      pending_ = std::move(batch);
    }
    cv_.notify_all();
    if (stop) break;
    if (!ok) cv_.wait_for(lk, std::chrono::seconds(1), [&] { return stopping_; });
  }
}

bool EventStore::commit(Pending& batch) {
  try {
    exec(write_db_, "BEGIN");
    {
      Statement ins(write_db_, insert_sql());
      for (const auto& b : batch.batches) insert_row(ins.get(), b.who->post, b.who->agent, b.summary, b.body);
      Statement hist(write_db_, "INSERT INTO history(at_ms, scope, id, status, score) VALUES(?,?,?,?,?)");
      for (const auto& h : batch.history) {
        auto* st = hist.get();
        auto status = to_string(h.status);
        sqlite3_bind_int64(st, 1, h.at_ms);
        const auto scope = to_string(h.scope);
        sqlite3_bind_text(st, 2, scope.data(), static_cast<int>(scope.size()), SQLITE_STATIC);
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
      Statement reading(write_db_,
                        "INSERT OR REPLACE INTO strategy_readings(indicator, observed_at_ms, value, post, agent, seq, "
                        "received_at_ms) VALUES(?,?,?,?,?,?,?)");
      for (const auto& r : batch.readings) {
        auto* st = reading.get();
        sqlite3_bind_text(st, 1, r.indicator.c_str(), static_cast<int>(r.indicator.size()), SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, r.observed_at_ms);
        sqlite3_bind_double(st, 3, r.value);
        sqlite3_bind_text(st, 4, r.post.c_str(), static_cast<int>(r.post.size()), SQLITE_STATIC);
        sqlite3_bind_text(st, 5, r.agent.c_str(), static_cast<int>(r.agent.size()), SQLITE_STATIC);
        sqlite3_bind_int64(st, 6, static_cast<sqlite3_int64>(r.seq));
        sqlite3_bind_int64(st, 7, r.received_at_ms);
        if (sqlite3_step(st) != SQLITE_DONE) throw std::runtime_error(sqlite3_errmsg(write_db_));
        sqlite3_reset(st);
      }
      Statement keep(write_db_, "INSERT OR REPLACE INTO silences(id, body) VALUES(?,?)");
      Statement drop(write_db_, "DELETE FROM silences WHERE id = ?");
      for (const auto& [id, body] : batch.silences) {
        auto* st = body.empty() ? drop.get() : keep.get();
        sqlite3_bind_int64(st, 1, static_cast<sqlite3_int64>(id));
        if (!body.empty()) sqlite3_bind_text(st, 2, body.c_str(), static_cast<int>(body.size()), SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE) throw std::runtime_error(sqlite3_errmsg(write_db_));
        sqlite3_reset(st);
      }
      Statement trust(write_db_, "INSERT OR REPLACE INTO trust_records(key, body) VALUES(?,?)");
      for (const auto& [key, body] : batch.trust) {
        sqlite3_bind_text(trust.get(), 1, key.c_str(), static_cast<int>(key.size()), SQLITE_STATIC);
        sqlite3_bind_text(trust.get(), 2, body.c_str(), static_cast<int>(body.size()), SQLITE_STATIC);
        if (sqlite3_step(trust.get()) != SQLITE_DONE) throw std::runtime_error(sqlite3_errmsg(write_db_));
        sqlite3_reset(trust.get());
      }
    }
    exec(write_db_, "COMMIT");
    committed_events_ += batch.events;
    committed_readings_ += batch.readings.size();
    std::string was;
    {
      std::lock_guard lk(failure_mu_);
      was.swap(failure_);
    }
    if (!was.empty())
      log_->warn("store {}: commits succeed again; the {} event(s) kept in memory are stored", opt_.file.string(),
                 batch.events);
    return true;
  } catch (const std::exception& e) {
    sqlite3_exec(write_db_, "ROLLBACK", nullptr, nullptr, nullptr);
    write_errors_ += 1;
    {
      std::lock_guard lk(failure_mu_);
      failure_ = e.what();
    }
    log_->error("store {}: commit of {} event(s) failed, kept in memory and retried: {}", opt_.file.string(),
                batch.events, e.what());
    return false;
  }
}

}  // namespace postwatch::aggregator
