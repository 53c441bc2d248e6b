// The board's tick: roll-up, statuses, history, the goal feed and the live stream; and the
// progress report made off the io thread.
#include "service_impl.hpp"

namespace postwatch::aggregator {

void AggregatorService::Impl::stream_update(const char* type, json snapshot, Sent& sent, bool status_changed,
                                            std::int64_t now) {
  if (!status_changed && stream->clients() == 0) return;
  std::string body = dump_json(snapshot);
  if (!status_changed && (body == sent.body || now - sent.at_ms < options.stream_update_ms)) return;
  sent = {std::move(body), now};
  snapshot["type"] = type;
  snapshot["change"] = status_changed ? "status" : "update";
  stream->broadcast(dump_json(snapshot));
}

void AggregatorService::Impl::tick() {
  auto now = now_utc_ms();
  if (jet) jet->tick(now);
  if (shared_trust) {
    shared_trust->tick();
    if (!jet_started && shared_trust->may_join()) {
      jet->start();
      jet_started = true;
    } else if (!jet_started && shared_trust->settled() && !told_staying_out) {
      told_staying_out = true;
      log->error(
          "cluster trust: not joining the group: this instance cannot verify the agents' keys the others "
          "registered, so it would refuse every enrolled agent's messages");
    }
  }
  silent = silent_posts(*catalogue, agents, state, now, LivenessPolicy{options.missed_heartbeats});
  tick_silences(now);
  auto snap = rollup.compute(state, now, silent, board.last().cells);
  std::vector<StatusBoard::ClockOff> clock_off;
  for (const auto& a : agents)  // every instance hears every heartbeat
    if (a.clock.offset.correction_ms() != 0)
      clock_off.push_back({a.post, a.name, static_cast<double>(a.clock.offset.correction_ms()) / 1000.0});
  board.set_clock_offsets(std::move(clock_off));
  board.set_store_failing(!store.failure().empty(), store.pending_events());
  auto changes = jet ? board_tick_clustered(snap, now) : board.tick(snap, silent, now);
  bool periodic = now - last_history_ms >= options.history_interval_ms;
  for (std::size_t g = 0; g < board.goals().size(); ++g) {
    const auto& s = board.goals()[g];
    std::string id = std::to_string(catalogue->goals()[g].id);
    bool changed = std::any_of(changes.statuses.begin(), changes.statuses.end(),
                               [&](const StatusChange& c) { return c.scope == StatusScope::Goal && c.id == id; });
    if (changed || periodic) store.record_history({now, StatusScope::Goal, id, s.shown, s.score});
    if (changed && feed_publisher())
      outbox.publish(topics::goal_feed(catalogue->goals()[g].id), dump_json(goal_snapshot_json(*catalogue, board, g)),
                     true, OutboundPriority::Snapshot);
    stream_update("goal", goal_snapshot_json(*catalogue, board, g), goal_sent[g], changed, now);
  }
  for (std::size_t p = 0; p < board.pillars().size(); ++p) {
    const auto& s = board.pillars()[p];
    const std::string& id = catalogue->pillars()[p].id;
    bool changed = std::any_of(changes.statuses.begin(), changes.statuses.end(),
                               [&](const StatusChange& c) { return c.scope == StatusScope::Pillar && c.id == id; });
    if (changed || periodic) store.record_history({now, StatusScope::Pillar, id, s.shown, s.score});
    if (changed && feed_publisher())
      outbox.publish(topics::pillar_feed(id), dump_json(pillar_snapshot_json(*catalogue, board, p)), true,
                     OutboundPriority::Snapshot);
    stream_update("pillar", pillar_snapshot_json(*catalogue, board, p), pillar_sent[p], changed, now);
  }
  if (periodic) last_history_ms = now;
  if (jet) shared_figures.tick(*jet, store);  // every instance serves the same targets
  progress_feed.tick(now, feed_publisher());
  if (shared_outbox) shared_outbox->set_leading(jet->leader());
  if (notifier) notifier->tick(now, !jet || jet->leader());
  if (!jet) {  // one box: docs/fleet.md says rollouts and commands are not clustered yet
    tick_rollouts(now);
    commands.tick(now, publish_retained());
  }
  for (auto id : changes.alarms)
    if (const Alarm* a = board.find_alarm(id)) on_alarm_changed(*a);
  for (const auto& c : changes.statuses)
    log->info("{} {}: {} -> {} (score {:.1f})", to_string(c.scope), c.id, to_string(c.from), to_string(c.to), c.score);
}

void AggregatorService::Impl::make_report(std::int64_t from, std::int64_t to, bool csv, const HttpReply& reply) {
  auto job = [file = store.file(), cat = catalogue, tgt = targets, from, to, csv, reply] {
    try {
      auto report = make_progress_report(*cat, *tgt, load_report_data(file, *cat, from, to));
      const std::string period = iso_utc(from).substr(0, 10) + "-" + iso_utc(to).substr(0, 10);
      if (csv) return reply(csv_response("postwatch-report-" + period + ".csv", render_report_csv(report)));
      HttpResponse res{http::status::ok, 11};
      res.set(http::field::content_type, "text/html; charset=utf-8");
      res.set(http::field::cache_control, "no-store");
      res.body() = render_report_html(report);
      reply(std::move(res));
    } catch (const std::exception& e) {
      reply(error_response(http::status::internal_server_error, std::string("the report failed: ") + e.what()));
    }
  };
  if (!report_worker.submit(std::move(job)))
    reply(error_response(http::status::service_unavailable, "reports are being made; try again in a minute"));
}

void AggregatorService::Impl::repeat(boost::asio::steady_timer& timer, std::int64_t interval_ms, void (Impl::*fn)()) {
  timer.expires_after(std::chrono::milliseconds(interval_ms));
  timer.async_wait([this, &timer, interval_ms, fn](boost::system::error_code ec) {
    if (ec) return;
    (this->*fn)();
    repeat(timer, interval_ms, fn);
  });
}

}  // namespace postwatch::aggregator
