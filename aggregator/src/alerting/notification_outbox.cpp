#include "alerting/notification_outbox.hpp"

#include "postwatch/clock.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace postwatch::aggregator {

NotificationOutbox::NotificationOutbox(const std::filesystem::path& file, std::map<std::string, DeliverFn> channels,
                                       OutboxTiming timing, std::shared_ptr<spdlog::logger> log,
                                       std::shared_ptr<OutboxMirror> mirror)
    : channels_(std::move(channels)),
      timing_(timing),
      log_(std::move(log)),
      table_(std::make_unique<OutboxTable>(file)),
      mirror_(std::move(mirror)) {
  said_at_start_ = table_->last_said(now_utc_ms() - 30LL * 24 * 3600 * 1000);
  refresh_figures();
  if (auto n = pending_.load(); n > 0)
    log_->info("notifications: {} pending from before the restart; delivering them", n);
  worker_ = std::thread([this] { run(); });
}

NotificationOutbox::~NotificationOutbox() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  worker_.join();
}

void NotificationOutbox::enqueue(NotificationEntry entry) {
  {
    std::lock_guard lock(mutex_);
    handed_over_.push_back(std::move(entry));
  }
  wake_.notify_all();
}

std::string NotificationOutbox::said_before_start(std::uint64_t id) const {
  auto it = said_at_start_.find(id);
  return it == said_at_start_.end() ? "" : it->second;
}

NotificationFigures NotificationOutbox::figures() const {
  NotificationFigures f{delivered_.load(), failed_attempts_.load(), pending_.load(), 0};
  if (auto oldest = oldest_created_ms_.load(); oldest > 0)
    f.oldest_pending_age_s = static_cast<double>(std::max<std::int64_t>(0, now_utc_ms() - oldest)) / 1000.0;
  return f;
}

std::int64_t NotificationOutbox::backoff_ms(int attempts, const OutboxTiming& t) {
  std::int64_t d = t.retry_initial_ms;
  for (int i = 1; i < attempts && d < t.retry_max_ms; ++i) d *= 2;
  return std::min(d, t.retry_max_ms);
}

void NotificationOutbox::refresh_figures() {
  pending_ = table_->count();
  oldest_created_ms_ = table_->oldest_created_at().value_or(0);
}

// Entries reach the table here, on the worker, so the io thread never waits for the disk.
void NotificationOutbox::write_handed_over() {
  std::deque<NotificationEntry> batch;
  {
    std::lock_guard lock(mutex_);
    batch.swap(handed_over_);
  }
  if (batch.empty()) return;
  auto now = now_utc_ms();
  for (const auto& e : batch) {
    try {
      auto text = e.body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      if (e.supersedes)
        table_->replace(e.channel, e.group_key, text, now);
      else
        table_->add(e.channel, e.group_key, text, e.group_wait_ms, now);
    } catch (const std::exception& ex) {
      // The alarm is still on the board and in the alarms API; say loudly that this one is lost.
      log_->error("notifications: cannot store a notification for channel {} (alarm {}): {}", e.channel,
                  e.body.is_object() ? e.body.value("id", std::uint64_t{0}) : 0, ex.what());
    }
  }
  refresh_figures();
}

std::string NotificationOutbox::notification_id(std::int64_t id) const {
  return table_->file_tag() + "-" + std::to_string(id);
}

void NotificationOutbox::sync_mirror(std::int64_t now_ms) {
  if (!mirror_ || now_ms - mirror_synced_ms_ < 1000) return;
  mirror_synced_ms_ = now_ms;
  std::set<std::int64_t> pending;
  bool dropped = false;
  for (const auto& n : table_->all()) {
    pending.insert(n.id);
    const auto hash = std::hash<std::string>{}(n.entries);
    if (auto m = mirrored_.find(n.id); m != mirrored_.end() && m->second == hash) continue;
    auto s = mirror_->put(notification_id(n.id), n);
    if (s == MirrorState::Unknown) break;  // not reachable now: the next pass tries again
    if (s == MirrorState::Ours) {
      mirrored_[n.id] = hash;
      continue;
    }
    log_->info("notifications: {}-{} to {} was taken over by another instance while this one was away; dropped here",
               table_->file_tag(), n.id, n.channel);
    table_->remove(n.id);
    mirror_->remove(notification_id(n.id));
    dropped = true;
  }
  for (auto it = mirrored_.begin(); it != mirrored_.end();)
    if (pending.count(it->first) == 0) {
      mirror_->remove(notification_id(it->first));
      it = mirrored_.erase(it);
    } else {
      ++it;
    }
  take_over_orphans();
  if (dropped) refresh_figures();
}

void NotificationOutbox::take_over_orphans() {
  for (auto& o : mirror_->orphans()) {
    const auto id = table_->insert_taken_over(o.notification, now_utc_ms());
    if (!mirror_->take(o)) {
      table_->remove(id);  // another instance got it first
      continue;
    }
    log_->info("notifications: took over {} to {} from {}, which stopped before delivering it ({} attempt(s) there)",
               o.key, o.notification.channel, o.owner, o.notification.attempts);
    refresh_figures();
  }
}

void NotificationOutbox::deliver(const PendingNotification& n) {
  if (mirror_ && mirror_->state(notification_id(n.id)) == MirrorState::TakenOver) {
    log_->info("notifications: {}-{} to {} was taken over by another instance; not delivered here", table_->file_tag(),
               n.id, n.channel);
    table_->remove(n.id);
    mirror_->remove(notification_id(n.id));
    mirrored_.erase(n.id);
    refresh_figures();
    return;
  }
  auto now = now_utc_ms();
  nlohmann::json body{{"notification_id", notification_id(n.id)},
                      {"channel", n.channel},
                      {"created_at_ms", n.created_at_ms},
                      {"attempt", n.attempts + 1},
                      {"alarms", nlohmann::json::parse(n.entries, nullptr, false)}};
  auto channel = channels_.find(n.channel);
  DeliveryResult r = channel == channels_.end()
                         ? DeliveryResult{false, "channel '" + n.channel + "' is no longer in the notifications file"}
                         : channel->second(body.dump(), now);
  if (r.ok) {
    table_->remove(n.id);
    if (mirror_ && mirrored_.erase(n.id) > 0)
      mirror_->remove(notification_id(n.id));  // at once: nobody is to take it over
    ++delivered_;
    warned_.erase(n.id);
    log_->info("notifications: {} delivered to {} ({} alarm change(s), attempt {})",
               body["notification_id"].get<std::string>(), n.channel, body["alarms"].size(), n.attempts + 1);
  } else {
    auto wait = backoff_ms(n.attempts + 1, timing_);
    table_->failed(n.id, now_utc_ms() + wait, r.error);
    ++failed_attempts_;
    // Attempts 1, 2, 4, 8, ... of each notification: a receiver down for hours must not flood
    // the log; the counters, the dashboard and the pending warning say the rest.
    const int attempt = n.attempts + 1;
    if ((attempt & (attempt - 1)) == 0)
      log_->warn("notifications: {} to {}: attempt {} failed ({}); retrying, next in {} ms{}",
                 body["notification_id"].get<std::string>(), n.channel, attempt, r.error, wait,
                 attempt > 1 ? " (logged at attempts 1, 2, 4, 8, ...)" : "");
  }
  refresh_figures();
}

void NotificationOutbox::warn_stale(std::int64_t now_ms) {
  if (now_ms - stale_checked_ms_ < 1000) return;
  stale_checked_ms_ = now_ms;
  if (oldest_created_ms_ == 0 || now_ms - oldest_created_ms_ < timing_.warn_pending_after_ms) return;
  for (const auto& n : table_->created_before(now_ms - timing_.warn_pending_after_ms))
    if (warned_.insert(n.id).second)
      log_->warn("notifications: {}-{} to {} pending for {} s ({} attempt(s), last error: {})", table_->file_tag(),
                 n.id, n.channel, (now_ms - n.created_at_ms) / 1000, n.attempts,
                 n.last_error.empty() ? "none" : n.last_error);
}

void NotificationOutbox::run() {
  for (;;) {
    {
      std::lock_guard lock(mutex_);
      if (stop_) break;
    }
    try {
      write_handed_over();
      auto now = now_utc_ms();
      warn_stale(now);
      sync_mirror(now);
      if (auto due = table_->next_due(now)) {
        deliver(*due);
        continue;
      }
      // Sleep until the next attempt is due, an entry is handed over, or a second has passed
      // (the stale check).
      auto next = table_->earliest_attempt_at().value_or(now + 1000);
      auto wait = std::chrono::milliseconds(std::clamp<std::int64_t>(next - now, 1, 1000));
      std::unique_lock lock(mutex_);
      wake_.wait_for(lock, wait, [this] { return stop_ || !handed_over_.empty(); });
    } catch (const std::exception& e) {
      log_->error("notifications: {}; trying again in 1 s", e.what());
      std::unique_lock lock(mutex_);
      wake_.wait_for(lock, std::chrono::seconds(1), [this] { return stop_; });
    }
  }
  try {
    write_handed_over();  // what the io thread handed over before stopping is kept for the next run
  } catch (const std::exception& e) {
    log_->error("notifications: at shutdown: {}", e.what());
  }
}

}  // namespace postwatch::aggregator
