#include "ingest/agent_presence.hpp"

#include "postwatch/topics.hpp"
#include "postwatch/wire_codec.hpp"

#include <spdlog/spdlog.h>

namespace postwatch::aggregator {

AgentPresence::AgentPresence(const IndicatorCatalogue& catalogue, std::shared_ptr<spdlog::logger> log)
    : catalogue_(catalogue), log_(std::move(log)) {}

void AgentPresence::on_message(std::string_view topic, std::span<const std::uint8_t> payload, std::int64_t now_ms) {
  topics::AgentTopic t;
  if (!topics::parse_agent_topic(topic, t) || t.channel == topics::Channel::Events) {
    ++rejected_;
    return;
  }
  if (payload.empty()) return;  // a cleared retained message
  AgentState st;
  auto err = decode_agent_state(payload, st);
  if (err != DecodeError::None || st.post_id != t.post || st.agent_id != t.agent || !catalogue_.find_post(st.post_id)) {
    ++rejected_;
    log_->warn("rejected agent state on '{}': {}", topic,
               err != DecodeError::None ? std::string(to_string(err)) : std::string("post/agent do not match topic"));
    return;
  }
  std::string key = st.post_id + "/" + st.agent_id;
  auto& entry = *agents_.try_emplace(key).first;
  auto& rec = entry.second;
  if (!rec.heard) {
    rec.heard = true;
    heard_.push_back(&entry);
  }
  rec.post = st.post_id;
  rec.agent = st.agent_id;
  if (t.channel == topics::Channel::State) {
    // Arrival order is the truth here: MQTT keeps one publisher's order per topic, and the
    // broker sends the last will (stamped at connect time) only after that connection is gone.
    rec.last_state_ms = st.at_ms;
    bool was_online = rec.online;
    rec.online = st.online;
    if (st.online) {
      rec.births += 1;
      rec.agent_version = st.agent_version;
      rec.config_hash = st.config_hash;
      rec.heartbeat_interval_s = st.heartbeat_interval_s;
      rec.first_unacked_seq = st.first_unacked_seq;
      rec.awaits_confirmation = st.awaits_confirmation;
      if (on_birth) on_birth(key, rec);
    }
    if (was_online != st.online)
      log_->info("agent {} is {}", key, st.online ? "online (birth)" : "offline (death / last will)");
  } else {
    rec.online = true;
    rec.last_heartbeat_ms = now_ms;
    rec.has_metrics = st.has_metrics;
    rec.metrics = st.metrics;
    if (st.heartbeat_interval_s) rec.heartbeat_interval_s = st.heartbeat_interval_s;
  }
}

std::vector<const std::string*> AgentPresence::take_heard() {
  std::vector<const std::string*> keys;
  keys.reserve(heard_.size());
  for (auto* e : heard_) {
    e->second.heard = false;
    keys.push_back(&e->first);
  }
  heard_.clear();
  return keys;
}

std::size_t AgentPresence::online_count() const {
  std::size_t n = 0;
  for (const auto& [_, a] : agents_) n += a.online;
  return n;
}

}  // namespace postwatch::aggregator
