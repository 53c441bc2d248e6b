// Embedded persistence (SQLite, WAL): accepted events, the status history and
// alarms. Ingest hands over each agent batch, encoded on the spot as one record
// (store/stored_batch.hpp); a writer thread commits every ~50 ms, so disk latency
// never sits on the hot path and a batch costs one row however many events it holds.
// Start-up replays the stored events. docs/aggregator.md, "The store".
#pragma once

#include "rollup/status_board.hpp"
#include "store/event_sink.hpp"
#include "store/stored_batch.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace spdlog {
class logger;
}

namespace postwatch {
class IndicatorCatalogue;
}

namespace postwatch::aggregator {

struct HistoryPoint {
  std::int64_t at_ms = 0;
  StatusScope scope = StatusScope::Goal;
  std::string id;
  Status status = Status::Unknown;
  double score = 0;
};

// When a commit counts as durable. Full: fsync of the WAL at every commit (group commit:
// one per commit interval), so a confirmed event survives a power cut. Normal: SQLite's
// synchronous=NORMAL, which survives a crash of the process but not of the machine.
enum class StoreSync { Normal, Full };

struct StoreOptions {
  std::filesystem::path file;
  std::chrono::milliseconds commit_interval{50};
  StoreSync sync = StoreSync::Full;
  std::int64_t event_retention_ms = 8LL * 24 * 3600 * 1000;      // the longest window (7 d) plus a day
  std::int64_t history_retention_ms = 400LL * 24 * 3600 * 1000;  // a biennial report needs more than a year
  // Raw events beyond this many bytes of store go, oldest first, but never those received
  // within keep_at_least_ms: the rollups' longest window, which a restart replays. 0: no cap.
  std::uint64_t max_bytes = 0;
  std::int64_t keep_at_least_ms = 7LL * 24 * 3600 * 1000;
};

struct StoredEventRow {
  std::string post, agent, indicator, text;
  std::uint64_t seq = 0;
  std::int64_t observed_at_ms = 0, received_at_ms = 0;
  ValueKind kind = ValueKind::Level;
  double number = 0;
  bool late = false;
  std::int64_t clock_correction_ms = 0;  // observed_at_ms is the agent's time minus this
  EventRefusal refused = EventRefusal::None;
};

// A stored event as ingest takes it again at start-up (BatchIngest::replay, with the row's
// post, agent, received_at_ms and clock_correction_ms); its views point into `r`.
inline EventView replayed_event(const StoredEventRow& r) {
  EventView e;
  e.seq = r.seq;
  e.observed_at_ms = r.observed_at_ms;
  e.indicator = r.indicator;
  e.kind = r.kind;
  e.number = r.number;
  e.text = r.text;
  return e;
}

// A figure the ministry reported, for strategy progress (docs/strategy-progress.md). Kept in a
// table of its own for as long as the store lives: retention removes raw events after days, a
// biennial report needs years of these. A later reading for the same indicator and date replaces
// the earlier one (a corrected figure).
struct StrategyReadingRow {
  std::string indicator, post, agent;
  std::int64_t observed_at_ms = 0, received_at_ms = 0;
  double value = 0;
  std::uint64_t seq = 0;
};

// Which stored events GET /api/v1/posts/{id}/events asks for.
struct EventQuery {
  std::string post;
  std::string indicator;                // empty: all
  std::int64_t from_ms = 0, to_ms = 0;  // by (corrected) observed_at, inclusive
  std::size_t limit = 1000;
};

class EventStore final : public EventSink {
 public:
  // Opens or creates the database; throws std::runtime_error with the path and SQLite's message.
  EventStore(StoreOptions options, const IndicatorCatalogue& catalogue, std::shared_ptr<spdlog::logger> log);
  ~EventStore() override;

  // Start-up, before start(): every stored event, in the order it was stored (each agent's
  // in the order ingest accepted them). A record whose checksum fails is reported and
  // skipped; the rest is replayed.
  std::uint64_t replay(const std::function<void(const StoredEventRow&)>& fn);
  std::vector<Alarm> load_alarms();
  std::vector<std::string> load_silences();  // their JSON, by id (silences/silence_book.hpp)
  // Agent keys and enrolment tokens (trust/agent_trust.hpp): key -> JSON body.
  std::vector<std::pair<std::string, std::string>> load_trust_records();
  // The newest history point of every scope/id, to restore the board.
  std::vector<HistoryPoint> latest_history();

  void start();  // the writer thread
  const std::filesystem::path& file() const { return opt_.file; }

  // EventSink, called on the io_context.
  void register_agent(std::uint32_t id, std::string_view post, std::string_view agent) override;
  void persist(std::span<const PersistedEvent> events) override;

  void record_history(const HistoryPoint& p);
  void save_alarm(const Alarm& a);
  // A silence as JSON, written with the next commit; an empty body deletes it.
  void save_silence(std::uint64_t id, std::string body);
  // An agent key or enrolment token as JSON, written with the next commit (kept for good).
  void save_trust_record(std::string key, std::string body);

  // Reads (io_context thread, own connection; WAL lets them run beside the writer).
  std::vector<HistoryPoint> query_history(StatusScope scope, const std::string& id, std::int64_t from_ms,
                                          std::int64_t to_ms, std::size_t limit);
  // Committed events, newest observed first.
  std::vector<StoredEventRow> query_events(const EventQuery& q);
  // A strategy reading another instance of a cluster stored (cluster/shared_figures.hpp),
  // written with the next commit.
  void keep_strategy_reading(StrategyReadingRow r);
  // Every committed strategy reading, by indicator and date.
  std::vector<StrategyReadingRow> query_strategy_readings();
  // Strategy readings committed since start: when it moves, progress is worth computing again.
  std::uint64_t strategy_readings_committed() const { return committed_readings_; }
  // Committed events received at or after since_ms, in stored order (benchmarks, tests).
  std::uint64_t scan_received_since(std::int64_t since_ms, const std::function<void(const StoredEventRow&)>& fn);

  // Blocks until everything handed over so far is committed (tests, shutdown).
  bool flush(std::chrono::milliseconds timeout);
  // Units of work (events, history, alarms, trust records, ...) handed over so far, and how many
  // of them are committed: an answer that promises something is stored waits for the second to
  // reach the first as it was (an enrolment's reply).
  std::uint64_t units_handed_over() const;
  std::uint64_t units_committed() const { return committed_units_; }
  std::uint64_t events_committed() const { return committed_events_; }
  // Given to persist() so far; everything handed over before a commit is in it (FIFO).
  std::uint64_t events_handed_over() const { return handed_over_; }
  // Handed over, not yet committed. Lock-free: MQTT ingest polls it from paho's thread.
  std::uint64_t pending_events() const { return handed_over_ - committed_events_; }
  std::uint64_t write_errors() const { return write_errors_; }
  // Why the last commit failed (a full disk, an I/O error); empty while commits succeed.
  std::string failure() const;
  // Records replay() found corrupt, and the events they held.
  std::uint64_t corrupt_batches() const { return corrupt_batches_; }
  std::uint64_t corrupt_events() const { return corrupt_events_; }
  // Bytes of the database in use (pages not on the free list), as of the last check.
  std::uint64_t used_bytes() const { return used_bytes_; }
  // Events retention removed since start.
  std::uint64_t events_pruned() const { return events_pruned_; }

 private:
  // One agent as the store knows it: its names, and the seqs it has stored (a few runs;
  // a seq handed over twice is stored once). Entries live as long as the store, so the
  // writer may read the names of one it is handed.
  struct StoredAgent {
    std::string post, agent;
    std::map<std::uint64_t, std::uint64_t> runs;  // first seq -> last seq, disjoint
    bool insert(std::uint64_t seq);               // false: stored already
  };
  struct PendingBatch {
    const StoredAgent* who = nullptr;
    StoredBatchSummary summary;
    std::string body;
  };
  struct Pending {
    std::deque<PendingBatch> batches;  // chunks: growing never moves what is queued
    std::uint64_t events = 0;
    std::vector<HistoryPoint> history;
    std::vector<std::pair<std::uint64_t, std::string>> alarms;    // id, json
    std::vector<std::pair<std::uint64_t, std::string>> silences;  // id, json; empty: delete
    std::vector<StrategyReadingRow> readings;
    std::vector<std::pair<std::string, std::string>> trust;  // key, json
    bool empty() const {
      return batches.empty() && history.empty() && alarms.empty() && silences.empty() && readings.empty() &&
             trust.empty();
    }
    void clear() {
      trust.clear();
      readings.clear();
      batches.clear();
      events = 0;
      history.clear();
      alarms.clear();
      silences.clear();
    }
  };
  void open_schema();
  void load_indicator_codes();
  void convert_row_store();  // stores from before batch records
  StoredAgent& agent_entry(std::string_view post, std::string_view agent);
  void writer_loop();
  bool commit(Pending& batch);
  bool prune(std::int64_t now_ms, bool by_age);
  void measure_size();
  static const char* insert_sql();
  static void insert_row(sqlite3_stmt* st, const std::string& post, const std::string& agent,
                         const StoredBatchSummary& s, std::string_view body);

  StoreOptions opt_;
  const IndicatorCatalogue& catalogue_;
  std::shared_ptr<spdlog::logger> log_;
  sqlite3* write_db_ = nullptr;
  sqlite3* read_db_ = nullptr;

  // The stable number of each indicator id in this store (table indicator_codes), so a
  // record does not depend on the catalogue's order: by catalogue index, and by code.
  std::vector<std::uint32_t> code_of_;
  std::vector<std::string> name_of_;

  // io_context thread only (and replay before start()).
  std::unordered_map<std::string, std::unique_ptr<StoredAgent>> agents_by_name_;
  std::vector<StoredAgent*> agents_;  // by ingest's id
  std::vector<PersistedEvent> new_events_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  Pending pending_;
  std::atomic<std::uint64_t> handed_over_{0};  // events given to persist(), new ones
  std::atomic<std::uint64_t> committed_events_{0};
  std::atomic<std::uint64_t> write_errors_{0};
  std::atomic<std::uint64_t> corrupt_batches_{0}, corrupt_events_{0};
  std::atomic<std::uint64_t> used_bytes_{0}, events_pruned_{0};
  std::atomic<std::uint64_t> committed_readings_{0};
  std::atomic<std::uint64_t> committed_units_{0};
  std::uint64_t committed_seqno_ = 0, handed_seqno_ = 0;  // units of work, for flush()
  bool stopping_ = false;
  std::chrono::steady_clock::time_point next_cap_warning_{};
  mutable std::mutex failure_mu_;  // guards failure_ only, never held across I/O
  std::string failure_;
  std::thread writer_;
};

}  // namespace postwatch::aggregator
