#include "ingest/batch_ingest.hpp"

#include "postwatch/topics.hpp"

#include <spdlog/spdlog.h>

namespace postwatch::aggregator {

std::uint64_t IngestCounters::batches_rejected() const {
  std::uint64_t n = batches_bad_topic + batches_topic_mismatch + batches_unknown_post;
  for (std::size_t i = 1; i < batches_undecodable.size(); ++i) n += batches_undecodable[i];
  for (auto r : batches_refused_signature) n += r;
  return n;
}

BatchIngest::BatchIngest(const IndicatorCatalogue& catalogue, AgentTable& agents, IndicatorState& state,
                         std::shared_ptr<spdlog::logger> log, IngestPolicy policy, EventSink* sink)
    : catalogue_(catalogue),
      state_(state),
      log_(std::move(log)),
      policy_(policy),
      sink_(sink),
      dictionary_(BatchDictionary::for_catalogue(catalogue)),
      unpacker_({dictionary_}),
      agents_(agents) {}

void BatchIngest::count_unpacked(std::size_t wire_bytes, std::size_t plain_bytes) {
  counters_.batches_compressed += 1;
  counters_.compressed_bytes_received += wire_bytes;
  counters_.compressed_bytes_unpacked += plain_bytes;
}

void BatchIngest::reject(std::string_view topic, std::string_view why) {
  // A flood of bad payloads must not flood the log: the first 100, then every 1000th.
  ++rejections_logged_;
  if (rejections_logged_ <= 100 || rejections_logged_ % 1000 == 0)
    log_->warn("rejected message on '{}': {} (rejections so far: {})", topic, why, rejections_logged_);
}

AgentRecord& BatchIngest::track(std::uint32_t post, std::string_view agent, std::uint64_t first_seq) {
  AgentRecord& r = agents_.get(post, agent);
  if (!r.has_events) {
    r.has_events = true;
    tracked_ += 1;
    r.events.seqs = SeqWindow(first_seq);  // strict from the first seq seen: agents publish in order
    if (sink_) sink_->register_agent(r.id, catalogue_.posts()[post].id, agent);
  }
  return r;
}

std::vector<AgentTrackSnapshot> BatchIngest::export_agents(std::uint32_t post) const {
  std::vector<AgentTrackSnapshot> out;
  for (auto id : agents_.at_post(post)) {
    const AgentRecord& r = agents_[id];
    if (!r.has_events) continue;
    const AgentTrack& t = r.events;
    out.push_back({r.name, t.seqs.snapshot(), t.clock_skew_ms, t.last_event_ms, t.events, t.reordered});
  }
  return out;
}

void BatchIngest::import_agents(std::uint32_t post, const std::vector<AgentTrackSnapshot>& agents) {
  for (auto id : agents_.at_post(post)) {
    AgentRecord& r = agents_[id];
    if (!r.has_events) continue;
    r.events = AgentTrack();
    agents_.mark_moved(r);
  }
  for (const auto& a : agents) {
    AgentRecord& r = track(post, a.agent, a.seqs.base);
    AgentTrack& t = r.events;
    t.seqs = SeqWindow::restore(a.seqs);
    t.clock_skew_ms = a.clock_skew_ms;
    t.last_event_ms = a.last_event_ms;
    t.events = a.events;
    t.reordered = a.reordered;
    agents_.mark_moved(r);
  }
}

bool BatchIngest::accept_event(AgentRecord& rec, const EventView& e, std::int64_t received_at_ms,
                               std::int64_t clock_correction_ms, std::string_view topic, bool ahead) {
  AgentTrack& agent = rec.events;
  const std::uint32_t post = rec.post;
  if (!agent.seqs.any()) agent.seqs = SeqWindow(e.seq);  // a track reset by import_agents starts here
  std::uint64_t highest = agent.seqs.highest();
  bool had_any = agent.events > 0;
  if (agent.seqs.accept(e.seq, rec.keeps_events() ? SeqWindow::kKeptWindow : SeqWindow::kWindow, ahead) ==
      SeqWindow::Verdict::Duplicate) {
    counters_.events_duplicate += 1;
    return false;
  }
  agents_.mark_moved(rec);
  // Refusals come after the seq check, so a refused event settles its seq (it holds back
  // neither the agent's confirmation nor, resent, a counter: it is a duplicate then). It is
  // stored all the same, with the reason: nothing is confirmed that is not in the store.
  EventRefusal refused = EventRefusal::None;
  std::optional<std::uint32_t> ind;
  if (e.observed_at_ms > received_at_ms + policy_.max_clock_skew_ms) {
    refused = EventRefusal::Future;
    counters_.events_future += 1;
    reject(topic, "event observed " + std::to_string(saturating_sub(e.observed_at_ms, received_at_ms) / 1000) +
                      " s in the future (seq " + std::to_string(e.seq) + "); stored, not applied");
  } else if (ind = catalogue_.indicator_index(e.indicator); !ind) {
    refused = EventRefusal::UnknownIndicator;
    counters_.events_unknown_indicator += 1;
    reject(topic, "unknown indicator '" + std::string(e.indicator) + "'");
  } else if (auto why = catalogue_.check_value(catalogue_.posts()[post], catalogue_.indicators()[*ind], e.kind,
                                               e.number, e.text);
             !why.empty()) {
    refused = EventRefusal::BadValue;
    counters_.events_bad_value += 1;
    reject(topic, why);
  }
  const bool late = e.observed_at_ms < received_at_ms - policy_.allowed_lateness_ms;
  if (refused == EventRefusal::None) {
    if (had_any && e.seq < highest) {
      agent.reordered += 1;
      counters_.events_reordered += 1;
    }
    if (late) counters_.events_late += 1;
    if (clock_correction_ms != 0) {
      counters_.events_time_corrected += 1;
      rec.clock.events_corrected += 1;
    }
    // A late reading still counts where it is the newest of its indicator: the state keeps
    // the reading with the latest observed_at, and a count window drops what it cannot hold.
    state_.apply(post, *ind, e, received_at_ms, clock_correction_ms);
    agent.last_event_ms = std::max(agent.last_event_ms, received_at_ms);
    agent.events += 1;
    counters_.events_accepted += 1;
  }
  if (sink_) {
    PersistedEvent pe;
    pe.agent = rec.id;
    pe.post = post;
    pe.indicator = ind.value_or(0);
    pe.seq = e.seq;
    pe.observed_at_ms = e.observed_at_ms;
    pe.clock_correction_ms = clock_correction_ms;
    pe.received_at_ms = received_at_ms;
    pe.number = e.number;
    pe.kind = e.kind;
    pe.late = late;
    pe.refused = refused;
    pe.text = e.text;
    if (!ind) pe.unknown_indicator = e.indicator;
    persist_buf_.push_back(pe);
  }
  return refused == EventRefusal::None;
}

std::int64_t BatchIngest::measure_clock(AgentRecord& rec, std::string_view topic, std::int64_t now_ms, bool prompt) {
  AgentClockRecord& clock = rec.clock;
  if (batch_.clock_epoch != clock.epoch) {
    clock.epoch = batch_.clock_epoch;  // the agent saw its clock jump: start the estimate again
    clock.offset.restart();
  }
  clock.epoch_seen = true;
  const std::int64_t before = clock.offset.correction_ms();
  if (batch_.sent_at_ms != 0) {
    rec.events.clock_skew_ms = saturating_sub(batch_.sent_at_ms, now_ms);
    clock.offset.observe({rec.events.clock_skew_ms, now_ms, prompt}, policy_.clock);
    if (rec.events.clock_skew_ms > policy_.max_clock_skew_ms || rec.events.clock_skew_ms < -policy_.max_clock_skew_ms)
      counters_.batches_clock_skew += 1;
  }
  const std::int64_t after = clock.offset.correction_ms();
  if ((before == 0) != (after == 0)) {
    if (after != 0)
      log_->warn(
          "agent on '{}': its clock is {} s {} ours; its event times are corrected by that until it is "
          "back within {} s (fix the board's NTP)",
          topic, std::abs(after) / 1000, after > 0 ? "ahead of" : "behind", policy_.clock.correct_beyond_ms / 1000);
    else
      log_->info("agent on '{}': its clock is back within {} s of ours; its event times are no longer corrected", topic,
                 policy_.clock.correct_beyond_ms / 1000);
  }
  return after;
}

std::size_t BatchIngest::on_message(std::string_view topic, std::span<const std::uint8_t> payload, std::int64_t now_ms,
                                    bool prompt, const VerifyKey* verified) {
  topics::AgentTopic t;
  if (!topics::parse_agent_topic(topic, t) || t.channel != topics::Channel::Events) {
    counters_.batches_bad_topic += 1;
    reject(topic, "not an events topic");
    return 0;
  }
  if (is_packed_batch(payload)) {
    auto err = unpacker_.unpack(payload, unpacked_);
    if (err != DecodeError::None) {
      counters_.batches_undecodable[static_cast<std::size_t>(err)] += 1;
      std::string why =
          std::string(to_string(err)) + " compressed payload (" + std::to_string(payload.size()) + " bytes)";
      if (err == DecodeError::UnknownDictionary)
        why += fmt::format(
            ": dictionary {:08x}, ours is {:08x} (the agent runs another catalogue; it falls back to "
            "compression without the dictionary when its events stay unconfirmed)",
            unpacker_.last_dictionary_id(), dictionary_->id());
      reject(topic, why);
      return 0;
    }
    count_unpacked(payload.size(), unpacked_.size());
    payload = unpacked_;
  }
  auto err = decode_batch(payload, batch_);
  if (err != DecodeError::None) {
    counters_.batches_undecodable[static_cast<std::size_t>(err)] += 1;
    reject(topic, std::string(to_string(err)) + " payload (" + std::to_string(payload.size()) + " bytes)");
    return 0;
  }
  if (batch_.post_id != t.post || batch_.agent_id != t.agent) {
    counters_.batches_topic_mismatch += 1;
    if (on_topic_mismatch) on_topic_mismatch(t.post, t.agent, batch_.post_id, batch_.agent_id);
    reject(topic, "payload is from post '" + std::string(batch_.post_id) + "' agent '" + std::string(batch_.agent_id) +
                      "', not the topic's");
    return 0;
  }
  // Before anything reads the events: a refused batch leaves no trace in the seq window, so a
  // forged one cannot make the agent's real events look like duplicates or get confirmed.
  if (keys_) {
    auto verdict = keys_->check(batch_.post_id, batch_.agent_id, batch_.key_id, payload, batch_.signature_offset,
                                now_ms, verified);
    if (refused(verdict)) {
      counters_.batches_refused_signature[refusal_index(verdict)] += 1;
      reject(topic, std::string("signature: ") + std::string(to_string(verdict)) +
                        (batch_.key_id.empty() ? std::string() : " (key " + std::string(batch_.key_id) + ")"));
      if (on_signature_refused) on_signature_refused(verdict, t.post, t.agent);
      return 0;
    }
    if (verdict == SignatureVerdict::Signed) counters_.batches_signed += 1;
  }
  auto post = catalogue_.post_index(batch_.post_id);
  if (!post || catalogue_.posts()[*post].region != t.region) {
    counters_.batches_unknown_post += 1;
    reject(topic, post ? "post is not in region '" + std::string(t.region) + "'" : "unknown post");
    return 0;
  }
  if (batch_.catalogue_version > catalogue_.version()) {
    // Not refused: its events are checked one by one, and only those of indicators this
    // aggregator does not know are (a rollout through the aggregator adopts first).
    ++newer_catalogue_batches_;
    if (newer_catalogue_batches_ <= 20 || newer_catalogue_batches_ % 1000 == 0)
      log_->warn(
          "batch on '{}' was checked with catalogue_version {}, newer than this aggregator's {}: events of "
          "indicators it does not know are refused; roll catalogues out through the aggregator (docs/fleet.md)",
          topic, batch_.catalogue_version, catalogue_.version());
  }
  AgentRecord& rec = track(*post, batch_.agent_id, batch_.events.empty() ? 0 : batch_.events.front().seq);
  AgentTrack& agent = rec.events;
  agent.catalogue_version = batch_.catalogue_version;
  counters_.batches_accepted += 1;
  const std::int64_t correction = measure_clock(rec, topic, now_ms, prompt);
  state_.touch(*post, now_ms);
  persist_buf_.clear();
  std::size_t applied = 0;
  std::uint64_t gaps_before = agent.seqs.gaps();
  for (EventView e : batch_.events) {
    e.observed_at_ms = saturating_sub(e.observed_at_ms, correction);
    if (accept_event(rec, e, now_ms, correction, topic, batch_.urgent)) {
      ++applied;
      if (batch_.urgent) counters_.events_urgent += 1;
      if (e.observed_at_ms >= now_ms - policy_.allowed_lateness_ms && on_applied_latency)
        on_applied_latency(now_ms - e.observed_at_ms);
    }
  }
  counters_.events_gaps += agent.seqs.gaps() - gaps_before;
  if (sink_ && !persist_buf_.empty()) sink_->persist(persist_buf_);
  return applied;
}

void BatchIngest::settle(AgentRecord& agent, std::uint64_t seq) {
  agent.events.seqs.settle_through(seq);
  agents_.mark_moved(agent);
}

std::uint64_t BatchIngest::give_up(AgentRecord& agent, std::uint64_t seq) {
  const std::uint64_t gaps = agent.events.seqs.give_up_through(seq);
  counters_.events_gaps += gaps;
  agents_.mark_moved(agent);
  return gaps;
}

void BatchIngest::replay(std::string_view post, std::string_view agent, const EventView& e, std::int64_t received_at_ms,
                         std::int64_t clock_correction_ms) {
  auto post_ix = catalogue_.post_index(post);
  if (!post_ix) return;                            // the post left the catalogue
  AgentRecord& r = track(*post_ix, agent, e.seq);  // tells the store the agent's id
  EventSink* sink = sink_;
  sink_ = nullptr;  // the event is stored already
  std::uint64_t gaps_before = r.events.seqs.gaps();
  accept_event(r, e, received_at_ms, clock_correction_ms, "(replay)", false);
  counters_.events_gaps += r.events.seqs.gaps() - gaps_before;
  sink_ = sink;
}

}  // namespace postwatch::aggregator
