#include "ingest/batch_ingest.hpp"

#include "postwatch/topics.hpp"

#include <spdlog/spdlog.h>

namespace postwatch::aggregator {

std::uint64_t IngestCounters::batches_rejected() const {
  std::uint64_t n = batches_bad_topic + batches_topic_mismatch + batches_unknown_post;
  for (std::size_t i = 1; i < batches_undecodable.size(); ++i) n += batches_undecodable[i];
  return n;
}

BatchIngest::BatchIngest(const IndicatorCatalogue& catalogue, AgentTable& agents, IndicatorState& state,
                         std::shared_ptr<spdlog::logger> log, IngestPolicy policy, EventSink* sink)
    : catalogue_(catalogue), state_(state), log_(std::move(log)), policy_(policy), sink_(sink), agents_(agents) {}

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

bool BatchIngest::accept_event(AgentRecord& rec, const EventView& e, std::int64_t received_at_ms, bool late,
                               std::string_view topic) {
  AgentTrack& agent = rec.events;
  const std::uint32_t post = rec.post;
  if (!agent.seqs.any()) agent.seqs = SeqWindow(e.seq);  // a track reset by import_agents starts here
  std::uint64_t highest = agent.seqs.highest();
  bool had_any = agent.events > 0;
  if (agent.seqs.accept(e.seq, rec.keeps_events() ? SeqWindow::kKeptWindow : SeqWindow::kWindow) ==
      SeqWindow::Verdict::Duplicate) {
    counters_.events_duplicate += 1;
    return false;
  }
  agents_.mark_moved(rec);
  // Refusals come after the seq check, so a refused event settles its seq (it holds back
  // neither the agent's confirmation nor, resent, a counter: it is a duplicate then).
  if (e.observed_at_ms > received_at_ms + policy_.max_clock_skew_ms) {
    counters_.events_future += 1;
    reject(topic, "event observed in the future (seq " + std::to_string(e.seq) + ")");
    return false;
  }
  auto ind = catalogue_.indicator_index(e.indicator);
  if (!ind) {
    counters_.events_unknown_indicator += 1;
    reject(topic, "unknown indicator '" + std::string(e.indicator) + "'");
    return false;
  }
  if (!catalogue_.check_value(catalogue_.indicators()[*ind], e.kind, e.number, e.text).empty()) {
    counters_.events_bad_value += 1;
    reject(topic, "bad value for '" + std::string(e.indicator) + "'");
    return false;
  }
  if (had_any && e.seq < highest) {
    agent.reordered += 1;
    counters_.events_reordered += 1;
  }
  if (late) {
    counters_.events_late += 1;
  } else {
    state_.apply(post, *ind, e, received_at_ms);
  }
  agent.last_event_ms = std::max(agent.last_event_ms, received_at_ms);
  agent.events += 1;
  counters_.events_accepted += 1;
  if (sink_) {
    PersistedEvent pe;
    pe.agent = rec.id;
    pe.post = post;
    pe.indicator = *ind;
    pe.seq = e.seq;
    pe.observed_at_ms = e.observed_at_ms;
    pe.received_at_ms = received_at_ms;
    pe.number = e.number;
    pe.kind = e.kind;
    pe.late = late;
    pe.text = e.text;
    persist_buf_.push_back(pe);
  }
  return true;
}

std::size_t BatchIngest::on_message(std::string_view topic, std::span<const std::uint8_t> payload,
                                    std::int64_t now_ms) {
  topics::AgentTopic t;
  if (!topics::parse_agent_topic(topic, t) || t.channel != topics::Channel::Events) {
    counters_.batches_bad_topic += 1;
    reject(topic, "not an events topic");
    return 0;
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
  auto post = catalogue_.post_index(batch_.post_id);
  if (!post || catalogue_.posts()[*post].region != t.region) {
    counters_.batches_unknown_post += 1;
    reject(topic, post ? "post is not in region '" + std::string(t.region) + "'" : "unknown post");
    return 0;
  }
  AgentRecord& rec = track(*post, batch_.agent_id, batch_.events.empty() ? 0 : batch_.events.front().seq);
  AgentTrack& agent = rec.events;
  counters_.batches_accepted += 1;
  if (batch_.sent_at_ms != 0) {
    agent.clock_skew_ms = batch_.sent_at_ms - now_ms;
    if (std::abs(agent.clock_skew_ms) > policy_.max_clock_skew_ms) {
      counters_.batches_clock_skew += 1;
      reject(topic, "agent clock is " + std::to_string(agent.clock_skew_ms / 1000) + " s off ours");
    }
  }
  state_.touch(*post, now_ms);
  persist_buf_.clear();
  std::size_t applied = 0;
  std::uint64_t gaps_before = agent.seqs.gaps();
  for (const EventView& e : batch_.events) {
    bool late = e.observed_at_ms < now_ms - policy_.allowed_lateness_ms;
    if (accept_event(rec, e, now_ms, late, topic)) {
      ++applied;
      if (!late && on_applied_latency) on_applied_latency(now_ms - e.observed_at_ms);
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
                         bool late) {
  auto post_ix = catalogue_.post_index(post);
  if (!post_ix) return;                            // the post left the catalogue
  AgentRecord& r = track(*post_ix, agent, e.seq);  // tells the store the agent's id
  EventSink* sink = sink_;
  sink_ = nullptr;  // the event is stored already
  std::uint64_t gaps_before = r.events.seqs.gaps();
  accept_event(r, e, received_at_ms, late, "(replay)");
  counters_.events_gaps += r.events.seqs.gaps() - gaps_before;
  sink_ = sink;
}

}  // namespace postwatch::aggregator
