#include "alerting/alarm_notifier.hpp"

#include "alerting/webhook_channel.hpp"

#include <spdlog/spdlog.h>

namespace postwatch::aggregator {

namespace {

std::map<std::string, DeliverFn> make_channels(const NotificationConfig& config) {
  std::map<std::string, DeliverFn> out;
  for (const auto& c : config.channels) {
    auto channel = std::make_shared<const WebhookChannel>(c);
    out[c.name] = [channel](const std::string& body, std::int64_t now_ms) { return channel->deliver(body, now_ms); };
  }
  return out;
}

OutboxTiming timing(const NotificationConfig& c) {
  return {c.retry_initial_ms, c.retry_max_ms, c.warn_pending_after_ms};
}

}  // namespace

AlarmNotifier::AlarmNotifier(NotificationConfig config, const std::filesystem::path& data_dir,
                             std::shared_ptr<spdlog::logger> log)
    : router_(std::move(config)),
      outbox_(std::make_unique<NotificationOutbox>(data_dir / "notifications.sqlite", make_channels(router_.config()),
                                                   timing(router_.config()), std::move(log))) {}

void AlarmNotifier::on_alarm(const AlarmNotice& a, std::int64_t now_ms, bool notifies) {
  send(router_.on_alarm(a, now_ms, notifies));
}

void AlarmNotifier::tick(std::int64_t now_ms, bool notifies) { send(router_.due_reminders(now_ms, notifies)); }

void AlarmNotifier::send(std::vector<NotificationEntry> entries) {
  for (auto& e : entries) outbox_->enqueue(std::move(e));
}

}  // namespace postwatch::aggregator
