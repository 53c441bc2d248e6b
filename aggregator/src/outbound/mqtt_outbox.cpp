#include "outbound/mqtt_outbox.hpp"

#include <spdlog/spdlog.h>

namespace postwatch::aggregator {

MqttOutbox::MqttOutbox(boost::asio::io_context& io, OutboxClient client, std::shared_ptr<spdlog::logger> log,
                       OutboxOptions options)
    : io_(io),
      client_(std::move(client)),
      log_(std::move(log)),
      options_(options),
      queue_(options.limits),
      timer_(io) {}

void MqttOutbox::publish(OutboundMessage m) {
  if (stopped_) {
    // After stop(): nothing will send it. Counted, so a late alarm is never lost silently.
    queue_.push(std::move(m));
    queue_.drop_waiting(OutboundDrop::Shutdown);
    return;
  }
  const bool notice = !m.retained;
  const auto dropped_before = queue_.counters().dropped_total();
  queue_.push(std::move(m));
  if (notice && queue_.counters().dropped_total() != dropped_before && queue_.counters().dropped_total() % 1000 == 1)
    log_->error(
        "outbound: {} notice(s) waiting, the most allowed; dropped one (alarms and resend requests dropped so "
        "far: {})",
        queue_.limits().max_notices, queue_.counters().dropped_total());
  pump();
}

void MqttOutbox::pump() {
  if (stopped_ || pumping_ || !client_.connected()) return;
  pumping_ = true;
  const auto now = std::chrono::steady_clock::now();
  while (auto t = queue_.take()) {
    if (!client_.publish(t->id, *t->message)) {
      queue_.completed(t->id, false);  // back to the front; the timer tries again
      break;
    }
    sent_at_.emplace(t->id, now);
  }
  pumping_ = false;
}

void MqttOutbox::on_published(std::uint64_t id, bool ok) {
  if (sent_at_.erase(id) == 0) return;  // timed out already, or sent during shutdown
  queue_.completed(id, ok);
  if (ok) pump();  // a failure waits for the timer: the connection is probably down
}

void MqttOutbox::start() { arm_timer(); }

void MqttOutbox::arm_timer() {
  timer_.expires_after(options_.retry_every);
  timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec && !stopped_) on_timer();
  });
}

void MqttOutbox::on_timer() {
  const auto now = std::chrono::steady_clock::now();
  std::size_t expired = 0;
  for (auto it = sent_at_.begin(); it != sent_at_.end();) {
    if (now - it->second < options_.stuck_after) {
      ++it;
      continue;
    }
    queue_.completed(it->first, false);
    it = sent_at_.erase(it);
    ++expired;
  }
  if (expired > 0) {
    stuck_ += expired;
    log_->warn("outbound: {} message(s) unacknowledged after {} ms; sending them again", expired,
               options_.stuck_after.count());
  }
  pump();
  arm_timer();
}

void MqttOutbox::stop(std::chrono::milliseconds budget) {
  if (stopped_) return;
  stopped_ = true;
  timer_.cancel();
  // What is in flight is the client's now: its disconnect waits for those acknowledgements.
  queue_.release_in_flight();
  sent_at_.clear();
  const auto deadline = std::chrono::steady_clock::now() + budget;
  std::size_t sent = 0;
  while (std::chrono::steady_clock::now() < deadline && client_.connected() && client_.publish_and_wait) {
    auto t = queue_.take();
    if (!t) break;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    bool ok = client_.publish_and_wait(*t->message, std::max(left, std::chrono::milliseconds(1)));
    queue_.completed(t->id, ok);
    if (!ok) break;
    ++sent;
  }
  const std::size_t urgent = queue_.waiting(OutboundPriority::Urgent);
  const std::size_t left = queue_.drop_waiting(OutboundDrop::Shutdown);
  if (left > 0)
    log_->warn(
        "outbound: stopping with {} message(s) unsent ({} alarm(s) or resend request(s)); sent {} on the way out", left,
        urgent, sent);
}

}  // namespace postwatch::aggregator
