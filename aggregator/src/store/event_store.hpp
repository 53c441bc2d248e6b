// Embedded persistence (SQLite, WAL): accepted events, the status history and
// alarms. Ingest appends in memory; a writer thread commits every ~50 ms, so
// disk latency never sits on the hot path. Start-up replays the stored events.
#pragma once

#include "rollup/status_board.hpp"
#include "store/event_sink.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

struct sqlite3;

namespace spdlog {
class logger;
}

namespace postwatch {
class IndicatorCatalogue;
}

namespace postwatch::aggregator {

struct HistoryPoint {
  std::int64_t at_ms = 0;
  std::string scope, id;
  Status status = Status::Unknown;
  double score = 0;
};

struct StoreOptions {
  std::filesystem::path file;
  std::chrono::milliseconds commit_interval{50};
  std::int64_t event_retention_ms = 8LL * 24 * 3600 * 1000;      // the longest window (7 d) plus a day
  std::int64_t history_retention_ms = 400LL * 24 * 3600 * 1000;  // a biennial report needs more than a year
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

  // Start-up, before start(): every stored event in (agent, seq) order.
  std::uint64_t replay(const std::function<void(const StoredEventRow&)>& fn);
  // While running (io_context thread): the committed events of one post, in (agent, seq)
  // order, for an instance that takes the post over (docs/scale-out.md). flush() first.
  std::uint64_t replay_post(const std::string& post, const std::function<void(const StoredEventRow&)>& fn);
  std::vector<Alarm> load_alarms();
  // The newest history point of every scope/id, to restore the board.
  std::vector<HistoryPoint> latest_history();

  void start();  // the writer thread

  // EventSink, called on the io_context.
  void register_agent(std::uint32_t id, std::string_view post, std::string_view agent) override;
  void persist(std::span<const PersistedEvent> events) override;

  void record_history(const HistoryPoint& p);
  void save_alarm(const Alarm& a);

  // Reads (io_context thread, own connection; WAL lets them run beside the writer).
  std::vector<HistoryPoint> query_history(const std::string& scope, const std::string& id, std::int64_t from_ms,
                                          std::int64_t to_ms, std::size_t limit);
  // Committed events, newest observed first.
  std::vector<StoredEventRow> query_events(const EventQuery& q);

  // Blocks until everything handed over so far is committed (tests, shutdown).
  bool flush(std::chrono::milliseconds timeout);
  std::uint64_t events_committed() const { return committed_events_; }
  // Given to persist() so far; everything handed over before a commit is in it (FIFO).
  std::uint64_t events_handed_over() const { return handed_over_; }
  // Handed over, not yet committed. Lock-free: MQTT ingest polls it from paho's thread.
  std::uint64_t pending_events() const { return handed_over_ - committed_events_; }
  std::uint64_t write_errors() const { return write_errors_; }

 private:
  struct PendingEvent {
    PersistedEvent e;
    std::string text;
    std::string unknown_indicator;
  };
  struct Pending {
    std::vector<PendingEvent> events;
    std::vector<HistoryPoint> history;
    std::vector<std::pair<std::uint64_t, std::string>> alarms;  // id, json
    bool empty() const { return events.empty() && history.empty() && alarms.empty(); }
    void clear() {
      events.clear();
      history.clear();
      alarms.clear();
    }
  };
  void writer_loop();
  bool commit(Pending& batch, const std::vector<std::pair<std::string, std::string>>& agents);
  void prune(std::int64_t now_ms);

  StoreOptions opt_;
  const IndicatorCatalogue& catalogue_;
  std::shared_ptr<spdlog::logger> log_;
  sqlite3* write_db_ = nullptr;
  sqlite3* read_db_ = nullptr;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  Pending pending_;
  // The last committed batch, cleared, handed back so persist() appends into memory
  // that is already there instead of regrowing a vector from nothing every commit.
  Pending spare_;
  std::vector<std::pair<std::string, std::string>> agents_;         // id -> (post, agent)
  std::vector<std::pair<std::string, std::string>> writer_agents_;  // the writer thread's copy
  // Bumped by every register_agent(): ids are not registered in order (an agent's id comes
  // from the AgentTable, which also holds agents that sent only a birth), so the size alone
  // does not say the copy is stale.
  std::uint64_t agents_version_ = 0, writer_agents_version_ = 0;
  std::atomic<std::uint64_t> handed_over_{0};  // events given to persist()
  std::atomic<std::uint64_t> committed_events_{0};
  std::atomic<std::uint64_t> write_errors_{0};
  std::uint64_t committed_seqno_ = 0, handed_seqno_ = 0;  // units of work, for flush()
  bool stopping_ = false;
  std::thread writer_;
};

}  // namespace postwatch::aggregator
