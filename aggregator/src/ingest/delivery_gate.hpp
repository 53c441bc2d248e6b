// Back-pressure between Paho's delivery thread and the io_context (docs/aggregator.md §7).
// Paho's thread asks admit() before each message it hands over; while too many wait for the
// io_context, or the store is behind, admit() waits. Paho then stops reading the socket and the
// broker keeps the rest in our persistent session.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>

namespace spdlog {
class logger;
}

namespace postwatch::aggregator {

// The gate closes at `max_queued_messages` waiting (or while `behind()`) and opens again at
// half of it. A pause longer than `max_pause` would starve Paho's keep-alive and drop the
// connection, so after that the gate stays open (memory grows instead, and the log says so)
// until the pressure ends.
struct IngestFlowControl {
  std::size_t max_queued_messages = 4096;
  std::function<bool()> behind;  // called on paho's thread: must be thread-safe and cheap
  std::chrono::milliseconds max_pause{10'000};
};

struct IngestFlowStats {
  std::size_t queued_messages = 0;  // handed to the io_context, not yet handled
  std::uint64_t pauses = 0;         // times the gate closed
  std::uint64_t paused_ms = 0;      // total time paho's thread waited
  std::uint64_t overrides = 0;      // pauses that hit max_pause and opened the gate anyway
};

class DeliveryGate {
 public:
  DeliveryGate(IngestFlowControl flow, std::shared_ptr<spdlog::logger> log);

  // Paho's delivery thread, before each message: returns once it may be handed over.
  void admit();
  // One message handed to the io_context, and one handled there.
  void queued_one() { queued_ += 1; }
  // Messages handed to the io_context and not handled yet.
  std::size_t queued() const { return queued_.load(std::memory_order_relaxed); }
  void handled();
  // Opens the gate for good (stop): a paused delivery thread must not hold up a disconnect.
  void release();
  IngestFlowStats stats() const;

  // admit() waits inside Paho's message callback, where Paho holds its process-wide mutex:
  // any Paho call from another thread blocks until the gate opens, and the gate waits for the
  // io thread to drain its queue. Seen with gdb in the e2e benchmark: the io thread stuck in
  // is_connected() for the whole max_pause (10 s), every process idle. So another thread
  // enters Paho only inside an OutsideCall whose ok() is true (the gate was open), and the
  // gate closes only while no such call is inside (both flags sequentially consistent: each
  // side sees the other's).
  class OutsideCall {
   public:
    explicit OutsideCall(DeliveryGate& gate);
    ~OutsideCall();
    OutsideCall(const OutsideCall&) = delete;
    OutsideCall& operator=(const OutsideCall&) = delete;
    bool ok() const { return ok_; }

   private:
    DeliveryGate& gate_;
    bool ok_;
  };

 private:
  bool behind() const { return flow_.behind && flow_.behind(); }
  std::size_t resume_at() const { return flow_.max_queued_messages / 2; }
  bool over() const { return queued_.load() >= flow_.max_queued_messages || behind(); }
  bool still_over() const { return queued_.load() > resume_at() || behind(); }

  IngestFlowControl flow_;
  std::shared_ptr<spdlog::logger> log_;
  std::atomic<std::size_t> queued_{0};
  std::atomic<bool> waiting_{false};
  std::atomic<int> outside_calls_{0};  // Paho calls from other threads under way
  std::atomic<bool> released_{false};
  std::atomic<std::uint64_t> pauses_{0}, paused_ms_{0}, overrides_{0};
  bool overridden_ = false;  // paho's delivery thread only, as the two below
  std::chrono::steady_clock::time_point last_pause_logged_{};
  std::uint64_t pauses_unlogged_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
};

}  // namespace postwatch::aggregator
