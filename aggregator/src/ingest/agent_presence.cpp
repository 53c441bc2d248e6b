#include "ingest/agent_presence.hpp"

#include "postwatch/topics.hpp"
#include "postwatch/wire_codec.hpp"

#include <spdlog/spdlog.h>

namespace postwatch::aggregator {

AgentPresence::AgentPresence(const IndicatorCatalogue& catalogue, AgentTable& agents,
                             std::shared_ptr<spdlog::logger> log, ClockPolicy clock)
    : catalogue_(catalogue), agents_(agents), log_(std::move(log)), clock_(clock) {}

void AgentPresence::on_message(std::string_view topic, std::span<const std::uint8_t> payload, std::int64_t now_ms) {
  topics::AgentTopic t;
  if (!topics::parse_agent_topic(topic, t) || t.channel == topics::Channel::Events) {
    ++rejected_;
    return;
  }
  if (payload.empty()) return;  // a cleared retained message
  AgentState st;
  auto err = decode_agent_state(payload, st);
  auto post = err == DecodeError::None ? catalogue_.post_index(st.post_id) : std::nullopt;
  if (err != DecodeError::None || st.post_id != t.post || st.agent_id != t.agent || !post) {
    ++rejected_;
    log_->warn("rejected agent state on '{}': {}", topic,
               err != DecodeError::None ? std::string(to_string(err)) : std::string("post/agent do not match topic"));
    return;
  }
  if (keys_) {
    auto verdict = keys_->check(st.post_id, st.agent_id, st.key_id, payload, st.signature_offset, now_ms);
    if (refused(verdict)) {
      ++rejected_;
      auto& n = refused_signature_[refusal_index(verdict)];
      if (++n <= 20 || n % 1000 == 0)
        log_->warn("refused agent state on '{}': signature: {}{} ({} so far)", topic, to_string(verdict),
                   st.key_id.empty() ? std::string() : " (key " + st.key_id + ")", n);
      if (on_signature_refused) on_signature_refused(verdict, t.post, t.agent);
      return;
    }
  }
  AgentRecord& r = agents_.get(*post, st.agent_id);
  if (!r.has_presence) {
    r.has_presence = true;
    known_ += 1;
  }
  agents_.mark_heard(r);
  auto& rec = r.presence;
  const bool was_online = rec.online;
  AgentClockRecord& clock = r.clock;
  if (st.online) {
    clock.sync = st.clock_sync;
    clock.last_jump_ms = st.last_clock_jump_ms;
    clock.last_jump_at_ms = st.last_clock_jump_at_ms;
    if (st.clock_jumps != clock.jumps) {
      if (st.clock_jumps > clock.jumps && t.channel == topics::Channel::Heartbeat)
        log_->warn("agent {}/{} reports its clock jumped {:+} s (jump {}); its offset is measured again", st.post_id,
                   st.agent_id, st.last_clock_jump_ms / 1000, st.clock_jumps);
      clock.jumps = st.clock_jumps;
    }
  }
  if (t.channel == topics::Channel::State) {
    // Arrival order is the truth here: MQTT keeps one publisher's order per topic, and the
    // broker sends the last will (stamped at connect time) only after that connection is gone.
    rec.last_state_ms = st.at_ms;
    rec.online = st.online;
    rec.one_shot = st.one_shot;
    if (st.online) {
      // A new agent process, perhaps after a reboot that reset an RTC-less clock: what was
      // measured of the old one no longer holds. A retained birth at our start changes nothing.
      clock.offset.restart();
      clock.epoch = st.clock_jumps;
      rec.born_at_ms = now_ms;
      rec.births += 1;
      rec.agent_version = st.agent_version;
      rec.config_hash = st.config_hash;
      rec.heartbeat_interval_s = st.heartbeat_interval_s;
      rec.first_unacked_seq = st.first_unacked_seq;
      rec.awaits_confirmation = st.awaits_confirmation;
      rec.aggregator_key_ids = st.aggregator_key_ids;
      rec.has_fleet = st.has_fleet;
      rec.fleet = st.fleet;
      if (warn_broker_confirm_ && !st.awaits_confirmation && ++broker_confirm_births_ % 100 <= 20)
        log_->warn(
            "agent {}/{} releases its events on the broker's PUBACK (delivery.confirm: broker); on a NATS cluster "
            "a PUBACK does not mean stored across a stream leader's failover, so events can be lost: set "
            "delivery.confirm to aggregator (docs/scale-out.md)",
            st.post_id, st.agent_id);
    }
    if (was_online != st.online)
      log_->info("agent {}/{} is {}", st.post_id, st.agent_id,
                 st.online ? "online (birth)" : "offline (death / last will)");
  } else {
    rec.online = true;
    rec.last_heartbeat_ms = now_ms;
    // QoS 0, never queued for an absent subscriber: a prompt sample of the agent's clock.
    if (st.clock_jumps != clock.epoch) {
      clock.epoch = st.clock_jumps;
      clock.offset.restart();
    }
    if (st.at_ms != 0) clock.offset.observe({saturating_sub(st.at_ms, now_ms), now_ms, true}, clock_);
    rec.has_metrics = st.has_metrics;
    rec.metrics = st.metrics;
    rec.aggregator_key_ids = st.aggregator_key_ids;
    rec.has_fleet = st.has_fleet;
    rec.fleet = st.fleet;
    if (st.heartbeat_interval_s) rec.heartbeat_interval_s = st.heartbeat_interval_s;
  }
  if (rec.online != was_online) online_ = rec.online ? online_ + 1 : online_ - 1;
}

}  // namespace postwatch::aggregator
