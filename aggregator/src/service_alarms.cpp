// Alarms as the stages after the board see them: notices for routing, silences, the marks the
// API and stream add, and their retained MQTT messages.
#include "service_impl.hpp"

namespace postwatch::aggregator {

namespace {

// What routing needs of an alarm: its goal's pillar, its posts and their regions.
AlarmNotice alarm_notice(const Alarm& a, const IndicatorCatalogue& cat) {
  AlarmNotice n;  // by name: a positional list would let a new member take a neighbour's value
  n.id = a.id;
  n.kind = std::string(to_string(a.kind));
  n.level = std::string(to_string(a.level));
  n.goal = a.goal;
  n.open = a.open();
  n.acknowledged = a.acked_at_ms != 0;
  n.alarm = alarm_json(a);
  if (const Goal* g = a.kind == AlarmKind::Goal ? cat.find_goal(a.goal) : nullptr) n.pillar = g->pillar;
  auto add_post = [&](const std::string& id) {
    const Post* p = cat.find_post(id);
    if (!p || std::find(n.posts.begin(), n.posts.end(), id) != n.posts.end()) return;
    n.posts.push_back(id);
    if (std::find(n.regions.begin(), n.regions.end(), p->region) == n.regions.end()) n.regions.push_back(p->region);
  };
  if (!a.post.empty()) add_post(a.post);
  for (const auto& c : a.causes) add_post(c.post);
  return n;
}

}  // namespace

std::uint64_t AggregatorService::Impl::silenced_by(const Alarm& a, std::int64_t now) const {
  std::uint64_t id = 0;
  if (a.open()) silences.silenced(alarm_notice(a, *catalogue), now, &id);
  return id;
}

void AggregatorService::Impl::mark_alarm(const Alarm& a, json& j, std::int64_t now) const {
  if (!a.open()) return;
  if (std::uint64_t id = silenced_by(a, now)) j["silenced_by"] = id;
  if (notifier && notifier->flapping(alarm_notice(a, *catalogue))) j["flapping"] = true;
}

void AggregatorService::Impl::mark_alarm(json& alarm, std::int64_t now) const {
  if (const Alarm* a = board.find_alarm(alarm.value("id", std::uint64_t{0}))) mark_alarm(*a, alarm, now);
}

AlarmNotice AggregatorService::Impl::notice_of(const Alarm& a, std::int64_t now) const {
  auto n = alarm_notice(a, *catalogue);
  n.silenced = silences.silenced(n, now);
  return n;
}

void AggregatorService::Impl::on_alarm_changed(const Alarm& a) {
  store.save_alarm(a);
  // Clustered, only the leader notifies (docs/alerting.md, "In a cluster").
  auto now = now_utc_ms();
  if (notifier) notifier->on_alarm(notice_of(a, now), now, !jet || jet->leader());
  publish_alarm(a);
  json j = alarm_json(a);
  mark_alarm(a, j, now);
  j["type"] = "alarm";
  stream->broadcast(dump_json(j));
}

void AggregatorService::Impl::on_silence_changed(const Silence& s) {
  json j = keep_silence(s, now_utc_ms());
  if (jet) jet->share_silence(s.id, dump_json(j));  // every instance holds it (docs/scale-out.md)
  if (s.ended_at_ms != 0)
    log->info("silence {} ended by {} ({})", s.id, s.ended_by, s.comment);
  else
    log->info("{} {} set by {}: {} from {} to {} ({})", s.maintenance ? "maintenance window" : "silence", s.id,
              s.created_by, dump_json(j["match"]), iso_utc(s.starts_at_ms), iso_utc(s.ends_at_ms), s.comment);
}

json AggregatorService::Impl::keep_silence(const Silence& s, std::int64_t now) {
  json j = silence_json(s, now);
  store.save_silence(s.id, dump_json(j));
  json told = j;
  told["type"] = "silence";
  stream->broadcast(dump_json(told));
  return j;
}

void AggregatorService::Impl::merge_shared_silences(std::int64_t now) {
  for (const auto& body : jet->take_silences()) {
    auto s = silence_from_json(json::parse(body, nullptr, false));
    if (!s) {
      log->warn("cluster: a shared silence does not read back; ignored: {}", body.substr(0, 200));
      continue;
    }
    if (!silences.merge(*s)) continue;
    const Silence& kept = *silences.find(s->id);
    keep_silence(kept, now);
    log->info("cluster: {} {} {} (shared by another instance)", kept.maintenance ? "maintenance window" : "silence",
              kept.id, kept.ended_at_ms != 0 ? "ended by " + kept.ended_by : "set by " + kept.created_by);
  }
}

void AggregatorService::Impl::tick_silences(std::int64_t now) {
  if (jet) merge_shared_silences(now);
  auto t = silences.tick(now);
  for (auto id : t.dropped) store.save_silence(id, "");
  if (jet && jet->leader())
    for (auto id : t.dropped) jet->forget_silence(id);
  for (auto id : t.started) log->info("silence {} holds from now", id);
  for (auto id : t.ended) log->info("silence {} has ended", id);
  if (notifier && !(t.started.empty() && t.ended.empty()))
    for (const auto& a : board.alarms())
      if (a.open()) notifier->on_alarm(notice_of(a, now), now, !jet || jet->leader());
  maintenance = silences.maintenance(now);
  // A post in a maintenance window is not missing (its last values keep counting).
  for (std::size_t p = 0; p < silent.size() && p < maintenance.size(); ++p)
    if (maintenance[p] != 0) silent[p] = false;
}

void AggregatorService::Impl::publish_alarm(const Alarm& a) {
  if (feed_publisher())
    outbox.publish(std::string(topics::prefix) + "/feed/alarms", dump_json(alarm_json(a)), false,
                   OutboundPriority::Urgent);
}

}  // namespace postwatch::aggregator
