// The durable queue between routing and the channels (docs/alerting.md, "Durability"). The io
// thread only hands entries over (a short lock, no I/O); one worker thread of its own writes
// them to the OutboxTable, delivers what is due through its channel, and retries a failure
// with exponential backoff until it gets through. Figures for /metrics and /api/v1/stats are
// atomics, read from any thread.
#pragma once

#include "alerting/delivery_result.hpp"
#include "alerting/notification_router.hpp"
#include "alerting/outbox_mirror.hpp"
#include "alerting/outbox_table.hpp"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

namespace spdlog {
class logger;
}

namespace postwatch::aggregator {

struct NotificationFigures {
  std::uint64_t delivered = 0;        // since start
  std::uint64_t failed_attempts = 0;  // since start
  std::uint64_t pending = 0;          // in the table: gathering, due or waiting to be retried
  double oldest_pending_age_s = 0;    // 0 when none are pending
};

struct OutboxTiming {
  std::int64_t retry_initial_ms = 1'000;
  std::int64_t retry_max_ms = 300'000;
  std::int64_t warn_pending_after_ms = 600'000;
};

// How a channel delivers a notification body (WebhookChannel::deliver, AlertmanagerChannel::deliver,
// EmailChannel::deliver, or a test's stand-in).
using DeliverFn = std::function<DeliveryResult(const std::string& body, std::int64_t now_ms)>;

class NotificationOutbox {
 public:
  // Opens <file> (throws std::runtime_error if it cannot) and starts the worker. With a
  // `mirror` (a cluster), pending notifications are mirrored, one taken over by another
  // instance is dropped here, and the orphans of dead instances are taken over while leading.
  NotificationOutbox(const std::filesystem::path& file, std::map<std::string, DeliverFn> channels, OutboxTiming timing,
                     std::shared_ptr<spdlog::logger> log, std::shared_ptr<OutboxMirror> mirror = nullptr);
  // Stops the worker after the delivery in progress (at most one channel timeout), writing
  // every entry handed over so far to the table first.
  ~NotificationOutbox();
  NotificationOutbox(const NotificationOutbox&) = delete;
  NotificationOutbox& operator=(const NotificationOutbox&) = delete;

  // From any thread; returns at once.
  void enqueue(NotificationEntry entry);
  // The last change of alarm `id` this outbox had stored when it opened ("cleared", ...), if
  // any in the last 30 days. For alarms the store restores at start.
  std::string said_before_start(std::uint64_t id) const;
  NotificationFigures figures() const;

  // Delay before attempt `attempts` + 1 after `attempts` failures: initial, 2x, 4x, ... up to max.
  static std::int64_t backoff_ms(int attempts, const OutboxTiming& t);

 private:
  void run();
  void write_handed_over();
  void deliver(const PendingNotification& n);
  void warn_stale(std::int64_t now_ms);
  void refresh_figures();
  // With a mirror, at most once a second: mirror what is new or changed, forget what is gone,
  // and (leading) take over the orphans of dead instances.
  void sync_mirror(std::int64_t now_ms);
  std::string notification_id(std::int64_t id) const;  // "<file tag>-<id>", as receivers see it
  void take_over_orphans();

  std::map<std::string, DeliverFn> channels_;
  OutboxTiming timing_;
  std::shared_ptr<spdlog::logger> log_;
  std::unique_ptr<OutboxTable> table_;  // the worker's only, after the constructor
  std::shared_ptr<OutboxMirror> mirror_;
  std::map<std::uint64_t, std::string> said_at_start_;  // read before the worker starts; constant after
  std::map<std::int64_t, std::size_t> mirrored_;        // worker only: id -> hash of the entries mirrored
  std::int64_t mirror_synced_ms_ = 0;

  std::mutex mutex_;  // guards handed_over_ and stop_; never held during I/O
  std::condition_variable wake_;
  std::deque<NotificationEntry> handed_over_;
  bool stop_ = false;

  std::atomic<std::uint64_t> delivered_{0}, failed_attempts_{0}, pending_{0};
  std::atomic<std::int64_t> oldest_created_ms_{0};
  std::set<std::int64_t> warned_;  // worker only: ids already logged as pending too long
  std::int64_t stale_checked_ms_ = 0;
  std::thread worker_;
};

}  // namespace postwatch::aggregator
