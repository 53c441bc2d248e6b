#include "rollup/status_board.hpp"

#include "postwatch/name_table.hpp"

#include <nlohmann/json.hpp>

#include <cmath>

#include <algorithm>

namespace postwatch::aggregator {

namespace {
constexpr NameTable<AlarmKind, 5> kAlarmKindNames{{{AlarmKind::Goal, "goal"},
                                                   {AlarmKind::PostSilent, "post_silent"},
                                                   {AlarmKind::TopicMismatch, "topic_mismatch"},
                                                   {AlarmKind::ClockOffset, "clock_offset"},
                                                   {AlarmKind::StoreFailing, "store_failing"}}};
constexpr NameTable<StatusScope, 2> kStatusScopeNames{{{StatusScope::Goal, "goal"}, {StatusScope::Pillar, "pillar"}}};
}  // namespace

std::string_view to_string(AlarmKind k) { return kAlarmKindNames.name(k); }
std::optional<AlarmKind> parse_alarm_kind(std::string_view s) { return kAlarmKindNames.parse(s); }
std::string_view to_string(StatusScope s) { return kStatusScopeNames.name(s); }
std::optional<StatusScope> parse_status_scope(std::string_view s) { return kStatusScopeNames.parse(s); }

void to_json(nlohmann::json& j, AlarmKind k) { j = to_string(k); }
void to_json(nlohmann::json& j, StatusScope s) { j = to_string(s); }

StatusBoard::StatusBoard(const IndicatorCatalogue& catalogue, BoardPolicy policy)
    : catalogue_(catalogue), policy_(policy), goals_(catalogue.goals().size()), pillars_(catalogue.pillars().size()) {}

bool StatusBoard::debounce(ShownStatus& s, Status raw, std::int64_t now_ms) {
  if (raw == s.shown) {
    s.candidate = raw;
    s.candidate_since_ms = 0;
    return false;
  }
  if (s.candidate != raw || s.candidate_since_ms == 0) {
    s.candidate = raw;
    s.candidate_since_ms = now_ms;
  }
  // The first status after "unknown" shows at once: there is nothing to flap from.
  if (s.shown != Status::Unknown && now_ms - s.candidate_since_ms < policy_.min_duration_ms) return false;
  s.shown = raw;
  s.since_ms = now_ms;
  s.candidate_since_ms = 0;
  return true;
}

Alarm* StatusBoard::open_alarm(AlarmKind kind, int goal, const std::string& post) {
  for (auto& a : alarms_)
    if (a.open() && a.kind == kind && a.goal == goal && a.post == post) return &a;
  return nullptr;
}

std::uint64_t StatusBoard::raise_alarm(Alarm a, AlarmKind kind, int goal, const std::string& post,
                                       std::int64_t now_ms) {
  a.id = next_alarm_id_++;
  a.kind = kind;
  a.worst_level = std::max(a.worst_level, a.level);
  a.goal = goal;
  a.post = post;
  a.raised_at_ms = now_ms;
  alarms_.push_back(std::move(a));
  return alarms_.back().id;
}

void StatusBoard::update_goal_alarm(std::size_t g, std::int64_t now_ms, BoardChanges& out) {
  const ShownStatus& s = goals_[g];
  const GoalRollupResult& raw = last_.goals[g];
  Alarm* open = open_alarm(AlarmKind::Goal, raw.goal, "");
  bool alarming = s.shown == Status::Amber || s.shown == Status::Red;
  if (!alarming) {
    if (open && s.shown == Status::Green) {  // unknown (no coverage) does not clear: nobody is looking
      open->cleared_at_ms = now_ms;
      out.alarms.push_back(open->id);
    }
    return;
  }
  if (open && open->level == s.shown) return;
  // Raised, escalated, or de-escalated (red to amber): the level says what it is now, worst_level
  // what it was at worst, and the causes are today's.
  Alarm fresh;
  Alarm& a = open ? *open : fresh;
  a.level = s.shown;
  a.worst_level = std::max(a.worst_level, s.shown);
  a.causes.clear();
  // The cause: every post/indicator of this goal at amber or red now.
  const auto& inds = catalogue_.indicators();
  for (const auto& ir : raw.indicators) {
    for (std::uint32_t p = 0; p < catalogue_.posts().size(); ++p) {
      auto cell = static_cast<std::size_t>(p) * inds.size() + ir.indicator;
      Status st = last_.cells[cell];
      if (st == Status::Amber || st == Status::Red)
        a.causes.push_back({catalogue_.posts()[p].id, inds[ir.indicator].id, last_.values[cell], st});
    }
  }
  if (!open) {
    out.alarms.push_back(raise_alarm(std::move(fresh), AlarmKind::Goal, raw.goal, "", now_ms));
  } else {
    out.alarms.push_back(open->id);  // escalated or de-escalated
  }
}

void StatusBoard::update_silent_alarms(const std::vector<bool>& silent, std::int64_t now_ms, BoardChanges& out) {
  for (std::size_t p = 0; p < catalogue_.posts().size(); ++p) {
    const std::string& post = catalogue_.posts()[p].id;
    bool is_silent = p < silent.size() && silent[p];
    Alarm* open = open_alarm(AlarmKind::PostSilent, 0, post);
    if (is_silent && !open) {
      Alarm a;
      a.level = Status::Amber;
      out.alarms.push_back(raise_alarm(std::move(a), AlarmKind::PostSilent, 0, post, now_ms));
    } else if (!is_silent && open) {
      open->cleared_at_ms = now_ms;
      out.alarms.push_back(open->id);
    }
  }
}

void StatusBoard::update_clock_alarms(std::int64_t now_ms, BoardChanges& out) {
  std::vector<std::vector<const ClockOff*>> by_post(catalogue_.posts().size());
  for (const auto& c : clock_off_)
    if (c.post < by_post.size()) by_post[c.post].push_back(&c);
  for (std::size_t p = 0; p < by_post.size(); ++p) {
    const std::string& post = catalogue_.posts()[p].id;
    Alarm* open = open_alarm(AlarmKind::ClockOffset, 0, post);
    if (by_post[p].empty()) {
      if (open) {
        open->cleared_at_ms = now_ms;
        out.alarms.push_back(open->id);
      }
      continue;
    }
    std::vector<AlarmCause> causes;
    for (const ClockOff* c : by_post[p]) causes.push_back({post, c->agent, std::round(c->offset_s), Status::Amber});
    auto same = [&](const std::vector<AlarmCause>& a) {
      if (a.size() != causes.size()) return false;
      for (std::size_t i = 0; i < a.size(); ++i)
        if (a[i].indicator != causes[i].indicator || std::abs(a[i].value - causes[i].value) > 60) return false;
      return true;
    };
    if (!open) {
      Alarm a;
      a.level = Status::Amber;
      a.causes = std::move(causes);
      out.alarms.push_back(raise_alarm(std::move(a), AlarmKind::ClockOffset, 0, post, now_ms));
    } else if (!same(open->causes)) {  // another agent, or the offset moved by more than a minute
      open->causes = std::move(causes);
      out.alarms.push_back(open->id);
    }
  }
}

void StatusBoard::update_store_alarm(std::int64_t now_ms, BoardChanges& out) {
  Alarm* open = open_alarm(AlarmKind::StoreFailing, 0, "");
  if (!store_failing_) {
    if (open) {
      open->cleared_at_ms = now_ms;
      out.alarms.push_back(open->id);
    }
    return;
  }
  if (open) return;
  Alarm a;
  a.level = Status::Red;
  a.causes.push_back({"", "events_waiting_for_store", static_cast<double>(store_waiting_), Status::Red});
  out.alarms.push_back(raise_alarm(std::move(a), AlarmKind::StoreFailing, 0, "", now_ms));
}

void StatusBoard::record_topic_mismatch(const std::string& topic_post, const std::string& claimed,
                                        std::int64_t now_ms) {
  mismatches_[topic_post].record(claimed, now_ms, policy_.mismatch_attempts);
}

void StatusBoard::update_mismatch_alarms(std::int64_t now_ms, BoardChanges& out) {
  for (auto it = mismatches_.begin(); it != mismatches_.end();) {
    const std::string& post = it->first;
    const MismatchAttempts& m = it->second;
    Alarm* open = open_alarm(AlarmKind::TopicMismatch, 0, post);
    const bool quiet = now_ms - m.at_ms.back() > policy_.mismatch_window_ms;
    const bool repeated = m.at_ms.size() >= policy_.mismatch_attempts &&
                          m.at_ms.back() - m.at_ms.front() <= policy_.mismatch_window_ms && !quiet;
    if (repeated && (!open || m.total != m.reported_total)) {
      it->second.reported_total = m.total;
      Alarm fresh;
      Alarm& a = open ? *open : fresh;
      a.causes.clear();
      for (const auto& c : m.claimed)
        a.causes.push_back({c, "topic_mismatch", static_cast<double>(m.total), Status::Red});
      if (!open) {
        a.level = Status::Red;
        out.alarms.push_back(raise_alarm(std::move(fresh), AlarmKind::TopicMismatch, 0, post, now_ms));
      } else {
        out.alarms.push_back(open->id);  // more attempts since the last report
      }
    } else if (open && quiet) {
      open->cleared_at_ms = now_ms;
      out.alarms.push_back(open->id);
    }
    if (quiet && !open_alarm(AlarmKind::TopicMismatch, 0, post))
      it = mismatches_.erase(it);  // forgotten: a later attempt starts a new count
    else
      ++it;
  }
}

BoardChanges StatusBoard::tick(const RollupSnapshot& raw, const std::vector<bool>& silent, std::int64_t now_ms) {
  BoardChanges out;
  last_ = raw;
  for (std::size_t g = 0; g < goals_.size(); ++g) {
    ShownStatus& s = goals_[g];
    const GoalRollupResult& r = raw.goals[g];
    Status before = s.shown;
    // A goal whose data went away keeps its last health while its shown status waits out
    // min_duration, so its score stays in the band of what the board still shows.
    if (r.indicators_reporting > 0) s.health = r.health;
    bool changed = debounce(s, r.status, now_ms);
    s.score = score_in_band(s.shown, s.health);
    if (changed) out.statuses.push_back({StatusScope::Goal, std::to_string(r.goal), before, s.shown, s.score, now_ms});
    update_goal_alarm(g, now_ms, out);
  }
  // Pillars follow their goals' shown statuses, so they never flap faster than the goals.
  for (std::size_t i = 0; i < pillars_.size(); ++i) {
    const Pillar& pillar = catalogue_.pillars()[i];
    Status worst = Status::Unknown;
    double total = 0;
    int known = 0;
    for (std::size_t g = 0; g < goals_.size(); ++g) {
      int id = catalogue_.goals()[g].id;
      if (std::find(pillar.goals.begin(), pillar.goals.end(), id) == pillar.goals.end()) continue;
      if (goals_[g].shown == Status::Unknown) continue;
      worst = std::max(worst, goals_[g].shown);
      total += goals_[g].health;
      ++known;
    }
    Status before = pillars_[i].shown;
    pillars_[i].health = known ? total / known : 0;
    pillars_[i].score = score_in_band(worst, pillars_[i].health);
    if (worst != pillars_[i].shown) {
      pillars_[i].shown = worst;
      pillars_[i].since_ms = now_ms;
      out.statuses.push_back({StatusScope::Pillar, pillar.id, before, worst, pillars_[i].score, now_ms});
    }
  }
  update_silent_alarms(silent, now_ms, out);
  update_clock_alarms(now_ms, out);
  update_mismatch_alarms(now_ms, out);
  update_store_alarm(now_ms, out);
  return out;
}

std::optional<Alarm> StatusBoard::acknowledge(std::uint64_t id, const std::string& by, const std::string& comment,
                                              std::int64_t now_ms) {
  for (auto& a : alarms_) {
    if (a.id != id) continue;
    a.acked_by = by;
    a.ack_comment = comment;
    a.acked_at_ms = now_ms;
    return a;
  }
  return std::nullopt;
}

const Alarm* StatusBoard::find_alarm(std::uint64_t id) const {
  for (const auto& a : alarms_)
    if (a.id == id) return &a;
  return nullptr;
}

void StatusBoard::restore(std::vector<ShownStatus> goals, std::vector<ShownStatus> pillars, std::vector<Alarm> alarms) {
  if (goals.size() == goals_.size()) goals_ = std::move(goals);
  if (pillars.size() == pillars_.size()) pillars_ = std::move(pillars);
  alarms_ = std::move(alarms);
  for (const auto& a : alarms_) next_alarm_id_ = std::max(next_alarm_id_, a.id + 1);
}

BoardChanges StatusBoard::adopt(std::vector<ShownStatus> goals, std::vector<ShownStatus> pillars,
                                std::vector<Alarm> alarms) {
  BoardChanges out;
  if (goals.size() != goals_.size() || pillars.size() != pillars_.size()) return out;
  for (std::size_t i = 0; i < goals.size(); ++i)
    if (goals[i].shown != goals_[i].shown)
      out.statuses.push_back({StatusScope::Goal, std::to_string(catalogue_.goals()[i].id), goals_[i].shown,
                              goals[i].shown, goals[i].score, goals[i].since_ms});
  for (std::size_t i = 0; i < pillars.size(); ++i)
    if (pillars[i].shown != pillars_[i].shown)
      out.statuses.push_back({StatusScope::Pillar, catalogue_.pillars()[i].id, pillars_[i].shown, pillars[i].shown,
                              pillars[i].score, pillars[i].since_ms});
  std::map<std::uint64_t, const Alarm*> before;
  for (const auto& a : alarms_) before[a.id] = &a;
  for (const auto& a : alarms) {
    auto it = before.find(a.id);
    const Alarm* b = it == before.end() ? nullptr : it->second;
    if (!b || b->level != a.level || b->worst_level != a.worst_level || b->cleared_at_ms != a.cleared_at_ms ||
        b->acked_at_ms != a.acked_at_ms || b->causes.size() != a.causes.size())
      out.alarms.push_back(a.id);
  }
  restore(std::move(goals), std::move(pillars), std::move(alarms));
  return out;
}

}  // namespace postwatch::aggregator
