#include "cluster/shared_outbox.hpp"

#include "cluster/nats_link.hpp"

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

namespace postwatch::aggregator {
using nlohmann::json;

namespace {

json to_json(const PendingNotification& n, const std::string& owner) {
  return {{"owner", owner},           {"channel", n.channel},
          {"group_key", n.group_key}, {"created_at_ms", n.created_at_ms},
          {"attempts", n.attempts},   {"entries", n.entries}};
}

}  // namespace

SharedOutbox::SharedOutbox(const JetStreamClusterOptions& options, std::shared_ptr<spdlog::logger> log)
    : options_(options),
      log_(std::move(log)),
      link_(std::make_unique<NatsLink>(NatsLinkOptions{options_.servers,
                                                       "postwatch-aggregator " + options_.instance + " notifications",
                                                       options_.user, options_.password, 2'000})) {}

SharedOutbox::~SharedOutbox() = default;

bool SharedOutbox::ready() {
  if (outbox_ && members_) return true;
  if (!link_->connected()) return false;
  std::string error;
  const std::string prefix = "postwatch-" + options_.group + "-";
  if (!outbox_) outbox_ = link_->bucket(prefix + "outbox", 0, options_.replicas, error);
  if (error.empty() && !members_)
    members_ = link_->bucket(prefix + "members", options_.lease_ms, options_.replicas, error);
  if (!error.empty() && error != problem_)
    log_->warn("notifications: the cluster's outbox is not reachable: {}", error);
  problem_ = error;
  return outbox_ && members_;
}

std::string SharedOutbox::key(const std::string& notification_id) const {
  return options_.instance + "." + notification_id;
}

MirrorState SharedOutbox::put(const std::string& notification_id, const PendingNotification& n) {
  if (!ready()) return MirrorState::Unknown;
  const auto k = key(notification_id);
  const std::string value = to_json(n, options_.instance).dump();
  std::string error;
  auto current = outbox_->get(k, &error);
  if (!error.empty()) return MirrorState::Unknown;
  if (current) {
    if (json::parse(current->value, nullptr, false).contains("taken_by")) return MirrorState::TakenOver;
    return outbox_->update(k, value, current->revision) ? MirrorState::Ours : MirrorState::Unknown;
  }
  return outbox_->create(k, value) ? MirrorState::Ours : MirrorState::Unknown;
}

MirrorState SharedOutbox::state(const std::string& notification_id) {
  if (!ready()) return MirrorState::Unknown;
  std::string error;
  auto current = outbox_->get(key(notification_id), &error);
  if (!error.empty() || !current) return MirrorState::Unknown;
  return json::parse(current->value, nullptr, false).contains("taken_by") ? MirrorState::TakenOver : MirrorState::Ours;
}

void SharedOutbox::remove(const std::string& notification_id) {
  if (ready()) outbox_->remove(key(notification_id));
}

std::vector<OutboxMirror::Orphan> SharedOutbox::orphans() {
  std::vector<Orphan> out;
  if (!leading_ || !ready()) return out;
  const auto now = std::chrono::steady_clock::now();
  if (now - listed_at_ < std::chrono::seconds(5)) return out;
  listed_at_ = now;
  std::string error;
  for (const auto& k : outbox_->keys(&error)) {
    const auto owner = k.substr(0, k.find('.'));
    if (owner == options_.instance || owner == k) continue;
    std::string member_error;
    if (members_->get(owner, &member_error) || !member_error.empty()) continue;  // alive, or cannot tell
    auto entry = outbox_->get(k);
    if (!entry) continue;
    json j = json::parse(entry->value, nullptr, false);
    if (!j.is_object() || j.contains("taken_by")) continue;
    Orphan o{k, owner, entry->revision, {}};
    o.notification.channel = j.value("channel", "");
    o.notification.group_key = j.value("group_key", "");
    o.notification.created_at_ms = j.value("created_at_ms", std::int64_t{0});
    o.notification.attempts = j.value("attempts", 0);
    o.notification.entries = j.value("entries", "[]");
    if (!o.notification.channel.empty()) out.push_back(std::move(o));
  }
  return out;
}

bool SharedOutbox::take(const Orphan& o) {
  if (!ready()) return false;
  json j = to_json(o.notification, o.owner);
  j["taken_by"] = options_.instance;
  return static_cast<bool>(outbox_->update(o.key, j.dump(), o.revision));
}

}  // namespace postwatch::aggregator
