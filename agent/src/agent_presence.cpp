#include "agent_presence.hpp"

#include "postwatch/clock.hpp"

#include <unistd.h>

#include <fstream>
#include <utility>

#ifndef POSTWATCH_AGENT_VERSION
#define POSTWATCH_AGENT_VERSION "0.1.0"
#endif

namespace postwatch::agent {

namespace {

std::uint64_t resident_set_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::uint64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

}  // namespace

AgentPresence::AgentPresence(const AgentConfig& config, AgentShared& shared, const AgentIdentity& identity,
                             BrokerConnection& connection, InflightPublisher& sender, std::string state_topic,
                             std::string heartbeat_topic)
    : config_(config),
      shared_(shared),
      identity_(identity),
      connection_(connection),
      sender_(sender),
      state_topic_(std::move(state_topic)),
      heartbeat_topic_(std::move(heartbeat_topic)) {}

AgentState AgentPresence::state(bool online) const {
  AgentState st;
  st.agent_id = config_.agent_id;
  st.post_id = config_.post_id;
  st.online = online;
  st.at_ms = now_utc_ms();
  st.agent_version = POSTWATCH_AGENT_VERSION;
  st.config_hash = config_.config_hash;
  st.one_shot = config_.one_shot;
  st.heartbeat_interval_s =
      static_cast<std::uint32_t>((config_.one_shot ? config_.expect_every : config_.heartbeat_interval).count());
  st.awaits_confirmation = config_.aggregator_confirms();
  st.aggregator_key_ids = identity_.trusted_key_ids();
  std::lock_guard lk(shared_.mu);
  if (fleet_report_) {
    st.has_fleet = true;
    st.fleet = *fleet_report_;
  }
  st.clock_sync = shared_.clock_sync;
  st.clock_jumps = shared_.clock_watch.jumps();
  if (const auto& j = shared_.clock_watch.last_jump()) {
    st.last_clock_jump_ms = j->delta_ms;
    st.last_clock_jump_at_ms = j->at_ms;
  }
  return st;
}

AgentMetrics AgentPresence::metrics_locked() const {
  const auto& s = shared_;
  AgentMetrics m;
  auto b = s.backlog->stats();
  m.spool_events = b.events;
  m.spool_bytes = b.bytes;
  m.oldest_unsent_age_ms = b.oldest_appended_ms ? now_utc_ms() - b.oldest_appended_ms : 0;
  m.events_accepted = s.counters.accepted;
  m.events_sent = s.counters.sent;
  m.events_dropped = b.dropped;
  m.reconnects = s.counters.reconnects;
  m.rss_bytes = resident_set_bytes();
  m.uptime_s = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_steady_).count());
  m.sent_through_seq = s.counters.sent_through_seq;
  // Tells the aggregator what this agent no longer holds (0 in broker mode: never confirmed).
  m.confirmed_through_seq = s.counters.confirmed_through_seq;
  // Below this, nothing can be resent: confirmed, or dropped by the overflow policy.
  if (config_.aggregator_confirms()) m.held_from_seq = s.backlog->first_seq();
  m.uplink_bytes = sender_.uplink_sent();
  m.uplink_bytes_per_s = sender_.uplink_rate();
  m.uplink_cap_bytes_per_s = config_.uplink_max_kbit_s * 1000 / 8;
  return m;
}

void AgentPresence::publish_heartbeat() {
  sender_.measure_uplink_rate();
  AgentState st = state(true);
  {
    std::lock_guard lk(shared_.mu);
    st.metrics = metrics_locked();
    st.has_metrics = true;
  }
  auto payload = encode_agent_state(st, identity_.signer());
  try {
    connection_.publish(heartbeat_topic_, payload.data(), payload.size(), 0, false);
    sender_.spent_uplink(heartbeat_topic_, payload.size(), 0);  // counted, never held back
    std::lock_guard lk(shared_.mu);
    shared_.counters.heartbeats_sent += 1;
  } catch (const mqtt::exception& e) {
    shared_.note_error(std::string("heartbeat failed: ") + e.what());
  }
}

void AgentPresence::publish_birth(std::uint64_t first_unacked) {
  AgentState st = state(true);
  st.first_unacked_seq = first_unacked;
  auto payload = encode_agent_state(st, identity_.signer());
  try {
    connection_.publish(state_topic_, payload.data(), payload.size(), 1, true);
    sender_.spent_uplink(state_topic_, payload.size(), 1);
    std::lock_guard lk(shared_.mu);
    shared_.counters.births_sent += 1;
  } catch (const mqtt::exception& e) {
    shared_.note_error(std::string("birth message failed: ") + e.what());
  }
}

std::string AgentPresence::death() const {
  auto p = encode_agent_state(state(false), identity_.signer());
  return std::string(p.begin(), p.end());
}

}  // namespace postwatch::agent
