#include "alerting/notification_router.hpp"

#include <algorithm>

namespace postwatch::aggregator {

namespace {

template <typename T>
bool allows(const std::vector<T>& wanted, const T& value) {
  return wanted.empty() || std::find(wanted.begin(), wanted.end(), value) != wanted.end();
}

bool allows_any(const std::vector<std::string>& wanted, const std::vector<std::string>& values) {
  return wanted.empty() || std::any_of(values.begin(), values.end(), [&](const auto& v) { return allows(wanted, v); });
}

int level_rank(const std::string& level) { return level == "red" ? 2 : level == "amber" ? 1 : 0; }

// What changed between two views of one alarm; null when nothing a person needs to hear.
const char* event_between(const AlarmNotice& before, const AlarmNotice& now) {
  if (!now.open) return "cleared";
  if (level_rank(now.level) > level_rank(before.level)) return "escalated";
  if (level_rank(now.level) < level_rank(before.level)) return "deescalated";
  if (now.acknowledged && !before.acknowledged) return "acknowledged";
  return nullptr;
}

}  // namespace

bool route_matches(const AlarmMatcher& m, const AlarmNotice& a) {
  if (!allows(m.kinds, a.kind) || !allows(m.levels, a.level)) return false;
  if (!m.goals.empty() && (a.kind != "goal" || !allows(m.goals, a.goal))) return false;
  if (!m.pillars.empty() && (a.kind != "goal" || !allows(m.pillars, a.pillar))) return false;
  return allows_any(m.regions, a.regions) && allows_any(m.posts, a.posts);
}

std::vector<std::pair<std::size_t, std::string>> NotificationRouter::targets(const AlarmNotice& a) const {
  std::vector<std::pair<std::size_t, std::string>> out;
  for (std::size_t r = 0; r < config_.routes.size(); ++r) {
    if (!route_matches(config_.routes[r].match, a)) continue;
    for (const auto& c : config_.routes[r].channels)
      if (std::none_of(out.begin(), out.end(), [&](const auto& t) { return t.second == c; })) out.emplace_back(r, c);
  }
  return out;
}

NotificationEntry NotificationRouter::entry(std::size_t route, const std::string& channel, const AlarmNotice& a,
                                            const char* event) const {
  NotificationEntry e{channel, channel + "/routes[" + std::to_string(route) + "]", config_.routes[route].group_wait_ms,
                      a.alarm};
  e.body["event"] = event;
  return e;
}

std::vector<NotificationEntry> NotificationRouter::on_alarm(const AlarmNotice& a, std::int64_t now_ms, bool notify) {
  auto it = known_.find(a.id);
  const char* event = nullptr;
  if (it == known_.end())
    event = a.open ? "raised" : "cleared";  // raised and cleared between two looks: still worth saying
  else
    event = event_between(it->second.last, a);
  std::vector<NotificationEntry> out;
  Known& k = known_[a.id];
  // A change of level or a clearance goes by the routes the alarm matches now; so does an
  // acknowledgement. A route that matched only the old level hears no more of it.
  if (event && notify)
    for (const auto& [route, channel] : targets(a)) {
      out.push_back(entry(route, channel, a, event));
      k.said_at_ms[channel] = now_ms;
    }
  k.last = a;
  if (!a.open) known_.erase(a.id);
  return out;
}

void NotificationRouter::remember(const AlarmNotice& a, std::int64_t now_ms) {
  if (!a.open) return;
  Known& k = known_[a.id];
  k.last = a;
  for (const auto& [route, channel] : targets(a)) k.said_at_ms[channel] = now_ms;
}

std::vector<NotificationEntry> NotificationRouter::due_reminders(std::int64_t now_ms, bool notify) {
  std::vector<NotificationEntry> out;
  for (auto& [id, k] : known_) {
    if (k.last.acknowledged) continue;  // somebody is on it
    for (const auto& [route, channel] : targets(k.last)) {
      auto every = config_.routes[route].repeat_interval_ms;
      if (every <= 0) continue;
      auto [said, fresh] = k.said_at_ms.try_emplace(channel, now_ms);
      if (fresh || now_ms - said->second < every) continue;
      said->second = now_ms;
      if (notify) out.push_back(entry(route, channel, k.last, "repeat"));
    }
  }
  return out;
}

}  // namespace postwatch::aggregator
