#include "ingest/delivery_gate.hpp"

#include <spdlog/spdlog.h>

namespace postwatch::aggregator {

DeliveryGate::DeliveryGate(IngestFlowControl flow, std::shared_ptr<spdlog::logger> log)
    : flow_(std::move(flow)), log_(std::move(log)) {}

DeliveryGate::OutsideCall::OutsideCall(DeliveryGate& gate) : gate_(gate) {
  gate_.outside_calls_.fetch_add(1);
  ok_ = !gate_.waiting_.load();
  if (!ok_) gate_.outside_calls_.fetch_sub(1);
}

DeliveryGate::OutsideCall::~OutsideCall() {
  if (ok_) gate_.outside_calls_.fetch_sub(1);
}

// Hysteresis: the gate closes at max_queued_messages and opens again at half of it. Without it
// a queue hovering at the bound paused (and logged a warning) once per message: 1 600 warnings
// a second in the e2e benchmark, and the delivery thread waited on every message.
void DeliveryGate::admit() {
  if (overridden_) {
    if (still_over()) return;  // open until the backlog is gone
    overridden_ = false;
  }
  if (released_ || !over()) return;
  waiting_ = true;
  if (outside_calls_.load() > 0) {  // a Paho call is on its way in: pausing now would block it
    waiting_ = false;
    return;
  }
  const auto start = std::chrono::steady_clock::now();
  pauses_ += 1;
  // One line per pause at most every 10 s: under a steady overload the gate closes every
  // half-queue, and the counters (ingest_pauses, ingest_paused_ms) carry the rest.
  const bool say = last_pause_logged_ == std::chrono::steady_clock::time_point{} ||
                   start - last_pause_logged_ >= std::chrono::seconds(10);
  if (say) {
    log_->warn("back-pressure: {} message(s) queued, store {}; pausing MQTT delivery (the broker keeps the rest){}",
               queued_.load(), behind() ? "behind" : "keeping up",
               pauses_unlogged_ ? fmt::format(" ({} pause(s) not logged since the last line)", pauses_unlogged_) : "");
    last_pause_logged_ = start;
    pauses_unlogged_ = 0;
  } else {
    pauses_unlogged_ += 1;
  }
  {
    std::unique_lock lk(mu_);
    while (!released_ && still_over()) {
      if (std::chrono::steady_clock::now() - start >= flow_.max_pause) {
        overridden_ = true;
        overrides_ += 1;
        log_->warn("back-pressure: still behind after {} ms; taking messages anyway so the connection stays up",
                   flow_.max_pause.count());
        break;
      }
      cv_.wait_for(lk, std::chrono::milliseconds(20));
    }
    waiting_ = false;
  }
  auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  paused_ms_ += static_cast<std::uint64_t>(waited.count());
  if (!overridden_ && say) log_->info("back-pressure: resumed after {} ms", waited.count());
}

void DeliveryGate::handled() {
  if (queued_.fetch_sub(1) <= resume_at() + 1 && waiting_.load()) cv_.notify_all();
}

void DeliveryGate::release() {
  released_ = true;
  cv_.notify_all();
}

IngestFlowStats DeliveryGate::stats() const {
  return {queued_.load(), pauses_.load(), paused_ms_.load(), overrides_.load()};
}

}  // namespace postwatch::aggregator
