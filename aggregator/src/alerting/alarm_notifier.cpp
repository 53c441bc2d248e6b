#include "alerting/alarm_notifier.hpp"

#include "alerting/alertmanager_channel.hpp"
#include "alerting/email_channel.hpp"
#include "alerting/webhook_channel.hpp"

#include <spdlog/spdlog.h>

namespace postwatch::aggregator {

namespace {

std::map<std::string, DeliverFn> make_channels(const NotificationConfig& config) {
  std::map<std::string, DeliverFn> out;
  auto add = [&](const std::string& name, auto channel) {
    out[name] = [channel](const std::string& body, std::int64_t now_ms) { return channel->deliver(body, now_ms); };
  };
  for (const auto& c : config.channels) {
    if (const auto* w = std::get_if<WebhookChannelConfig>(&c))
      add(w->name, std::make_shared<const WebhookChannel>(*w));
    else if (const auto* am = std::get_if<AlertmanagerChannelConfig>(&c))
      add(am->name, std::make_shared<const AlertmanagerChannel>(*am, config.dashboard_url));
    else if (const auto* mail = std::get_if<EmailChannelConfig>(&c))
      add(mail->name, std::make_shared<const EmailChannel>(*mail, config.dashboard_url));
  }
  return out;
}

OutboxTiming timing(const NotificationConfig& c) {
  return {c.retry_initial_ms, c.retry_max_ms, c.warn_pending_after_ms};
}

}  // namespace

AlarmNotifier::AlarmNotifier(NotificationConfig config, const std::filesystem::path& data_dir,
                             std::shared_ptr<spdlog::logger> log, std::shared_ptr<OutboxMirror> mirror)
    : router_(std::move(config)),
      outbox_(std::make_unique<NotificationOutbox>(data_dir / "notifications.sqlite", make_channels(router_.config()),
                                                   timing(router_.config()), std::move(log), std::move(mirror))) {}

void AlarmNotifier::on_alarm(const AlarmNotice& a, std::int64_t now_ms, bool notifies) {
  send(router_.on_alarm(a, now_ms, notifies));
}

void AlarmNotifier::tick(std::int64_t now_ms, bool notifies) { send(router_.due_reminders(now_ms, notifies)); }

void AlarmNotifier::send(std::vector<NotificationEntry> entries) {
  for (auto& e : entries) outbox_->enqueue(std::move(e));
}

}  // namespace postwatch::aggregator
