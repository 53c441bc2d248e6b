// What comes in from the broker, the state rebuilt from the store at start, and the
// confirmations and enrolment replies that go out once the store holds what they cover.
#include "service_impl.hpp"

namespace postwatch::aggregator {

void AggregatorService::Impl::dispatch(const std::string& topic, const std::string& payload, const Prechecked& pre) {
  auto now = now_utc_ms();
  precheck.refresh(trust.keys(), now);  // a key enrolled or revoked reaches Paho's thread
  if (topic.ends_with("/enrol")) {
    if (shared_trust)
      enrol_clustered(topic, payload, now);
    else if (auto reply = trust.on_enrol(topic, as_bytes(payload), *catalogue, now))
      send_enrol_reply(std::move(*reply));
    return;
  }
  if (std::string post, agent; parse_command_result_topic(topic, post, agent)) {
    on_command_result(post, agent, payload, now);
    return;
  }
  if (!topic.ends_with("/events")) {
    presence.on_message(topic, as_bytes(payload), now);
    return;
  }
  // Clustered, events come from JetStream (JetStreamCluster), not from this subscription.
  if (pre.unpacked) ingest.count_unpacked(pre.packed_bytes, pre.unpacked->size());
  ingest.on_message(topic, pre.unpacked ? std::span<const std::uint8_t>(*pre.unpacked) : as_bytes(payload), now,
                    !mqtt.may_be_backlog(now), pre.signed_by.get());
}

void AggregatorService::Impl::replay_row(const StoredEventRow& r) {
  ingest.replay(r.post, r.agent, replayed_event(r), r.received_at_ms, r.clock_correction_ms);
}

void AggregatorService::Impl::recover() {
  auto started = std::chrono::steady_clock::now();
  std::uint64_t n = store.replay([&](const StoredEventRow& r) { replay_row(r); });
  std::vector<ShownStatus> goals(catalogue->goals().size()), pillars(catalogue->pillars().size());
  for (const auto& h : store.latest_history()) {
    ShownStatus s{h.status, h.at_ms, h.status, 0, health_from_score(h.status, h.score), h.score};
    if (h.scope == StatusScope::Goal) {
      for (std::size_t i = 0; i < goals.size(); ++i)
        if (std::to_string(catalogue->goals()[i].id) == h.id) goals[i] = s;
    } else {
      for (std::size_t i = 0; i < pillars.size(); ++i)
        if (catalogue->pillars()[i].id == h.id) pillars[i] = s;
    }
  }
  board.restore(std::move(goals), std::move(pillars), store.load_alarms());
  std::vector<Silence> kept;
  for (const auto& body : store.load_silences())
    if (auto s = silence_from_json(json::parse(body, nullptr, false))) kept.push_back(std::move(*s));
  silences.restore(std::move(kept));
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
  if (n > 0) log->info("store: replayed {} event(s) in {} ms; {} alarm(s) restored", n, ms, board.alarms().size());
}

void AggregatorService::Impl::confirm_tick() {
  bool caught_up = mqtt.flow().queued_messages == 0;
  confirmer.tick({store.events_handed_over(), store.events_committed()}, caught_up, now_utc_ms());
}

void AggregatorService::Impl::on_store_progress() {
  if (options.confirm_interval_ms > 0)
    confirmer.publish_committed({store.events_handed_over(), store.events_committed()}, now_utc_ms());
  release_enrol_replies();
}

void AggregatorService::Impl::publish_reply(const AgentTrust::Reply& r) {
  outbox.publish(r.topic, std::string(r.payload.begin(), r.payload.end()), false, OutboundPriority::Urgent);
}

void AggregatorService::Impl::send_enrol_reply(AgentTrust::Reply r) {
  if (!r.after_commit) {  // a refusal promises nothing stored: at once
    publish_reply(r);
    return;
  }
  held_replies.push_back({store.units_handed_over(), std::move(r)});
  release_enrol_replies();
}

void AggregatorService::Impl::release_enrol_replies() {
  const auto committed = store.units_committed();
  while (!held_replies.empty() && held_replies.front().after_unit <= committed) {
    publish_reply(held_replies.front().reply);
    held_replies.pop_front();
  }
}

}  // namespace postwatch::aggregator
