#include "ingest/batch_ingest.hpp"

#include "postwatch/topics.hpp"

#include <spdlog/spdlog.h>

namespace postwatch::aggregator {

std::uint64_t IngestCounters::batches_rejected() const {
  std::uint64_t n = batches_bad_topic + batches_topic_mismatch + batches_unknown_post;
  for (std::size_t i = 1; i < batches_undecodable.size(); ++i) n += batches_undecodable[i];
  return n;
}

BatchIngest::BatchIngest(const IndicatorCatalogue& catalogue, IndicatorState& state,
                         std::shared_ptr<spdlog::logger> log)
    : catalogue_(catalogue), state_(state), log_(std::move(log)) {}

void BatchIngest::reject(std::string_view topic, std::string_view why) {
  // A flood of bad payloads must not flood the log: the first 100, then every 1000th.
  ++rejections_logged_;
  if (rejections_logged_ <= 100 || rejections_logged_ % 1000 == 0)
    log_->warn("rejected message on '{}': {} (rejections so far: {})", topic, why, rejections_logged_);
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
  key_.assign(batch_.post_id).append("/").append(batch_.agent_id);
  auto it = agents_.find(key_);
  if (it == agents_.end()) {
    AgentTrack track;
    track.post = *post;
    // Until a birth message says where the agent resumes, start at its first seq.
    track.seqs = SeqWindow(batch_.events.empty() ? 0 : batch_.events.front().seq);
    it = agents_.emplace(key_, track).first;
  }
  AgentTrack& agent = it->second;
  counters_.batches_accepted += 1;
  std::size_t applied = 0;
  std::uint64_t gaps_before = agent.seqs.gaps();
  for (const EventView& e : batch_.events) {
    bool had_any = agent.events > 0 || agent.seqs.highest() > 0;
    std::uint64_t highest = agent.seqs.highest();
    if (agent.seqs.accept(e.seq) == SeqWindow::Verdict::Duplicate) {
      counters_.events_duplicate += 1;
      continue;
    }
    if (had_any && e.seq < highest) {
      agent.reordered += 1;
      counters_.events_reordered += 1;
    }
    auto ind = catalogue_.indicator_index(e.indicator);
    if (!ind) {
      counters_.events_unknown_indicator += 1;
      reject(topic, "unknown indicator '" + std::string(e.indicator) + "'");
      continue;
    }
    if (!catalogue_.check_value(catalogue_.indicators()[*ind], e.kind, e.number, e.text).empty()) {
      counters_.events_bad_value += 1;
      reject(topic, "bad value for '" + std::string(e.indicator) + "'");
      continue;
    }
    state_.apply(*post, *ind, e, now_ms);
    agent.last_event_ms = now_ms;
    agent.events += 1;
    counters_.events_accepted += 1;
    ++applied;
  }
  counters_.events_gaps += agent.seqs.gaps() - gaps_before;
  return applied;
}

}  // namespace postwatch::aggregator
