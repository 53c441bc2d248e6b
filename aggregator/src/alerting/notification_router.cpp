#include "alerting/notification_router.hpp"

#include <algorithm>
#include <string_view>
#include <variant>

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
  if (!now.open) return before.open ? "cleared" : nullptr;
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

std::vector<std::pair<std::size_t, std::string>> NotificationRouter::audience(const Known& k,
                                                                              const AlarmNotice& a) const {
  auto out = targets(a);
  for (const auto& [route, taken] : k.steps_taken)
    for (std::size_t s = 0; s < taken; ++s)
      for (const auto& c : config_.routes[route].escalate[s].channels)
        if (std::none_of(out.begin(), out.end(), [&](const auto& t) { return t.second == c; }))
          out.emplace_back(route, c);
  return out;
}

// Each step of a route's chain whose time has come, in order; a step's channels that already
// heard of the alarm (by another route or step) are told again, since this one says "nobody
// has acknowledged it". The chain follows the routes the alarm matches now: a red route's
// chain stops when its alarm falls back to amber.
void NotificationRouter::due_escalations(Known& k, std::int64_t now_ms, bool notify,
                                         std::vector<NotificationEntry>& out) const {
  for (std::size_t r = 0; r < config_.routes.size(); ++r) {
    const auto& steps = config_.routes[r].escalate;
    if (steps.empty() || !route_matches(config_.routes[r].match, k.last)) continue;
    std::size_t& taken = k.steps_taken[r];
    for (; taken < steps.size() && now_ms - k.raised_at_ms >= steps[taken].after_ms; ++taken) {
      if (!notify) continue;
      for (const auto& channel : steps[taken].channels) {
        auto e = entry(r, channel, k.last, "escalation");
        e.body["escalation"] = {{"step", taken + 1}, {"of", steps.size()}, {"after_s", steps[taken].after_ms / 1000}};
        out.push_back(std::move(e));
      }
    }
  }
}

NotificationEntry NotificationRouter::entry(std::size_t route, const std::string& channel, const AlarmNotice& a,
                                            const char* event) const {
  NotificationEntry e{channel, channel + "/routes[" + std::to_string(route) + "]", config_.routes[route].group_wait_ms,
                      a.alarm};
  e.body["event"] = event;
  // What routing knows beyond the alarm's JSON, for the channels that write labels or text.
  // The webhook's body stays the alarm as the API shows it.
  const ChannelConfig* c = config_.find_channel(channel);
  if (c && !std::holds_alternative<WebhookChannelConfig>(*c)) {
    e.body["facts"] = {{"posts", a.posts}, {"regions", a.regions}};
    if (!a.pillar.empty()) e.body["facts"]["pillar"] = a.pillar;
  }
  return e;
}

// Alertmanager forgets an alert that is not sent again within its resolve_timeout (5 min by
// default), so every open alarm routed to an Alertmanager channel goes to it again each
// resend_interval, acknowledged or not (not while a silence holds it), until it closes. A re-send is one notification
// per channel holding all of the channel's open alarms, and it supersedes the channel's re-send still in the outbox
// (same group_key, any number of attempts): while Alertmanager is down the outbox holds at most one re-send per channel
// instead of one more each minute, and the newest view is the one that goes. A clearance or a change of level is
// followed at once by a fresh re-send, so an older one (that still has the alarm open, or at its old level) cannot be
// delivered after it and fire the alert again. Raised/cleared/... entries are never superseded.
NotificationEntry NotificationRouter::resend(const std::string& channel) const {
  NotificationEntry out{channel, channel + "/resend", 0, nlohmann::json::array(), true};
  for (const auto& [id, k] : known_) {
    if (!k.last.open || k.last.silenced) continue;
    for (const auto& [route, c] : targets(k.last))
      if (c == channel) out.body.push_back(entry(route, channel, k.last, "resend").body);
  }
  return out;
}

namespace {
// When the alarm was raised, as the board says (the same on every instance and across a
// restart); `fallback` if it does not say.
std::int64_t raised_at(const AlarmNotice& a, std::int64_t fallback) {
  const auto it = a.alarm.find("raised_at_ms");
  return it != a.alarm.end() && it->is_number_integer() ? it->get<std::int64_t>() : fallback;
}
}  // namespace

std::string flap_subject(const AlarmNotice& a) {
  return a.kind + "/" + (a.kind == "goal" ? std::to_string(a.goal) : a.posts.empty() ? "" : a.posts.front());
}

bool NotificationRouter::flapping(const AlarmNotice& a) const { return flaps_.flapping(flap_subject(a)); }

std::vector<NotificationEntry> NotificationRouter::on_alarm(const AlarmNotice& a, std::int64_t now_ms, bool notify) {
  auto [it, fresh] = known_.try_emplace(a.id);
  Known& k = it->second;
  if (fresh) k.raised_at_ms = raised_at(a, now_ms);
  std::vector<NotificationEntry> out;
  const std::string subject = flap_subject(a);
  const auto opening = fresh && a.open ? flaps_.opened(subject, now_ms) : FlapDetector::Opening::Steady;
  if (opening != FlapDetector::Opening::Steady || flaps_.flapping(subject)) {
    // Said once, when it starts; the board and the API keep showing every change meanwhile.
    if (opening == FlapDetector::Opening::StartsFlapping && notify && !a.silenced)
      for (const auto& [route, channel] : targets(a)) {
        out.push_back(entry(route, channel, a, "flapping"));
        out.back().body["flapping"] = {{"openings", flaps_.openings(subject)},
                                       {"window_s", flaps_.config().window_ms / 1000}};
      }
    if (opening == FlapDetector::Opening::StartsFlapping && !a.silenced) k.said = a;
    k.last = a;
    flapping_last_[subject] = a;
    if (!a.open) known_.erase(a.id);
    return out;
  }
  std::vector<std::string> resend_now;  // Alertmanager channels whose pending re-send is out of date
  if (!a.silenced) {
    // Never said: raised (or raised and cleared between two looks: still worth saying).
    const char* event = !k.said ? (a.open ? "raised" : "cleared") : event_between(*k.said, a);
    // A change of level or a clearance goes by the routes the alarm matches now; so does an
    // acknowledgement. A route that matched only the old level hears no more of it.
    if (event && notify)
      for (const auto& [route, channel] : audience(k, a)) {
        out.push_back(entry(route, channel, a, event));
        k.said_at_ms[channel] = now_ms;
        const ChannelConfig* c = config_.find_channel(channel);
        if (c && std::holds_alternative<AlertmanagerChannelConfig>(*c) && std::string_view(event) != "raised" &&
            std::string_view(event) != "acknowledged")
          resend_now.push_back(channel);
      }
    k.said = a;
  }
  k.last = a;
  if (!a.open) known_.erase(a.id);
  for (const auto& channel : resend_now) {
    out.push_back(resend(channel));
    resent_at_ms_[channel] = now_ms;
  }
  return out;
}

void NotificationRouter::remember(const AlarmNotice& a, std::int64_t now_ms, bool told_cleared) {
  if (!a.open) return;
  Known& k = known_[a.id];
  k.last = a;
  k.said = a;
  if (told_cleared) k.said->open = false;
  k.raised_at_ms = raised_at(a, now_ms);
  for (const auto& [route, channel] : targets(a)) k.said_at_ms[channel] = now_ms;
  // Steps whose time passed before this start are taken as sent (the previous run sent them,
  // unless the alarm's time came while no instance ran); later ones go out when due.
  std::vector<NotificationEntry> none;
  if (!a.acknowledged) due_escalations(k, now_ms, false, none);
}

// A subject steady for a window: its newest alarm change goes to the routes it matches as
// "flapping_ended" (its state says whether it ended open or cleared), and an open alarm counts
// as said from here, so its next change is told as usual.
void NotificationRouter::flapping_ended(std::int64_t now_ms, bool notify, std::vector<NotificationEntry>& out) {
  for (const auto& subject : flaps_.ended(now_ms)) {
    auto last = flapping_last_.find(subject);
    if (last == flapping_last_.end()) continue;
    const AlarmNotice a = std::move(last->second);
    flapping_last_.erase(last);
    if (auto k = known_.find(a.id); k != known_.end() && !a.silenced) k->second.said = a;
    if (!notify || a.silenced) continue;
    for (const auto& [route, channel] : targets(a)) out.push_back(entry(route, channel, a, "flapping_ended"));
  }
}

std::vector<NotificationEntry> NotificationRouter::due_reminders(std::int64_t now_ms, bool notify) {
  std::vector<NotificationEntry> out;
  flapping_ended(now_ms, notify, out);
  for (auto& [id, k] : known_) {
    // Somebody is on it; nobody is to be told; or it was said to flap.
    if (k.last.acknowledged || k.last.silenced || flaps_.flapping(flap_subject(k.last))) continue;
    due_escalations(k, now_ms, notify, out);
    for (const auto& [route, channel] : targets(k.last)) {
      auto every = config_.routes[route].repeat_interval_ms;
      if (every <= 0) continue;
      auto [said, fresh] = k.said_at_ms.try_emplace(channel, now_ms);
      if (fresh || now_ms - said->second < every) continue;
      said->second = now_ms;
      if (notify) out.push_back(entry(route, channel, k.last, "repeat"));
    }
  }
  for (const auto& c : config_.channels) {
    const auto* am = std::get_if<AlertmanagerChannelConfig>(&c);
    if (!am) continue;
    auto [at, fresh] = resent_at_ms_.try_emplace(am->name, now_ms);
    if (fresh || now_ms - at->second < am->resend_interval_ms) continue;
    at->second = now_ms;
    if (!notify) continue;
    auto e = resend(am->name);
    if (!e.body.empty()) out.push_back(std::move(e));
  }
  return out;
}

}  // namespace postwatch::aggregator
