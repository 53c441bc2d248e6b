// The publisher thread of an Agent (Agent::Impl::run) and its steps: upkeep, connecting and
// subscribing, the control messages, then the two lanes of the InflightPublisher.
#include "agent_impl.hpp"

#include "postwatch/clock.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <utility>

namespace postwatch::agent {

// Upkeep once a second: the backlog's fsync/age bounds, and drops reported as an event.
void Agent::Impl::maintain() {
  std::uint64_t new_drops = 0;
  std::function<void()> disk_work;
  {
    std::lock_guard lk(mu);
    check_clock_locked();
    if (++maintenance_ticks % 60 == 0) clock_sync = read_clock_sync(now_utc_ms());  // NTP may sync later
    disk_work = backlog->prepare_upkeep(now_utc_ms());
    auto dropped = backlog->stats().dropped;
    new_drops = dropped - reported_drops;
    reported_drops = dropped;
  }
  // fdatasync and the position file outside the lock: a slow disk then holds up this thread
  // only, never a source's submit() or Paho's thread (event_source.hpp).
  if (disk_work) disk_work();
  if (new_drops > 0 && catalogue->find_indicator("agent_events_dropped")) {
    IndicatorEvent e;
    e.indicator = "agent_events_dropped";
    e.kind = ValueKind::Count;
    e.number = static_cast<double>(new_drops);
    e.note = "events dropped by the spool's overflow or age policy";
    submit_internal(std::move(e));
  }
}

void Agent::Impl::submit_internal(IndicatorEvent e) {
  std::lock_guard lk(mu);
  check_clock_locked();
  e.observed_at_ms = now_utc_ms();
  try {
    backlog->append(std::move(e));
    counters.accepted += 1;
  } catch (const BacklogRefused& ex) {
    counters.rejected += 1;
  }
}

// The publisher thread: upkeep, the connection, the control messages, then the two lanes.
void Agent::Impl::run() {
  loop = SendLoop{};
  loop.next_heartbeat = std::chrono::steady_clock::now() + config.heartbeat_interval;
  while (!stop_requested()) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= loop.next_maintenance) upkeep(now);
    if (report_clock_jump() && connection->is_connected())
      publish_heartbeat_now();  // the aggregator measures the new offset from it at once
    if (config.aggregator_confirms()) follow_confirmations(now);
    if (!connection->is_connected() && !reconnect(now)) continue;
    resubscribe_if_due();
    publish_control_messages();
    sender->send_urgent();
    sender->fill_window();
    if (sender->idle())
      wait_for_work();
    else
      sender->await_oldest_ack();
  }
}

bool Agent::Impl::stop_requested() const {
  std::lock_guard lk(mu);
  return stopping;
}

// Once a second: the spool's upkeep, and keys taken up.
void Agent::Impl::upkeep(std::chrono::steady_clock::time_point now) {
  maintain();
  loop.next_maintenance = now + std::chrono::seconds(1);
  // A new key (rotate-key) or a first enrolment is taken up here. The last will was
  // signed with the old key when the connection was made: one clean reconnect renews it.
  if (identity.reload_if_changed() && connection->is_connected()) reconnect_for_new_key();
  // The aggregator's next key (or a retired one) from a confirmation: the heartbeat tells
  // it at once, so an operator waiting to switch keys does not wait a heartbeat interval.
  if (identity.apply_key_notice() && connection->is_connected()) presence->publish_heartbeat();
}

// Aggregator mode: a stalled confirmation asked for again, then what came applied.
void Agent::Impl::follow_confirmations(std::chrono::steady_clock::time_point now) {
  // Subscribing again also brings the retained confirmation back, in case the last one
  // was lost on its way (the subscription is QoS 0).
  if (connection->is_connected() && confirm_listener->resend_if_stalled(now)) subscribe_confirmations();
  sender->apply_confirmations();
}

// Not connected: waits out the backoff (in short slices, so upkeep keeps running through an
// outage), or connects. True once connected, with the birth sent.
bool Agent::Impl::reconnect(std::chrono::steady_clock::time_point now) {
  if (now < loop.next_connect) {
    std::unique_lock lk(mu);
    cv.wait_for(lk, std::min<std::chrono::steady_clock::duration>(loop.next_connect - now, std::chrono::seconds(1)),
                [&] { return stopping; });
    return false;
  }
  if (take_connection_lost()) {
    // Paho keeps the publishes it had not yet written when the connection dropped and writes
    // them first after a reconnect, ahead of the resend from the first unconfirmed seq: the
    // aggregator would get a later batch before earlier ones (seen as `reordered` in CI).
    // A fresh client starts with an empty queue; the backlog still holds those events.
    sender->drop_inflight();
    connection->replace_client();
  }
  if (!try_connect()) {
    if (connection->next_broker()) return false;  // another broker not yet tried in this round: at once
    back_off_connecting();
    return false;
  }
  loop.backoff = std::chrono::milliseconds(250);
  // Before the birth: the retained confirmation arrives with the subscription and releases
  // what the aggregator already holds.
  if (subscribes()) {
    loop.subscribed = subscribe_confirmations();
    loop.subscribe_backoff = std::chrono::milliseconds(1000);
    loop.subscribe_retry_at = std::chrono::steady_clock::now() + loop.subscribe_backoff;
  }
  start_over_from_spool();
  return true;
}

// Exponential backoff with jitter (half to all of it) so a fleet does not reconnect in lockstep.
void Agent::Impl::back_off_connecting() {
  auto wait = std::chrono::milliseconds(
      std::uniform_int_distribution<long>(loop.backoff.count() / 2, loop.backoff.count())(loop.rng));
  loop.backoff = std::min(loop.backoff * 2, kMaxConnectBackoff);
  loop.next_connect = std::chrono::steady_clock::now() + wait;
}

// A new connection: everything unconfirmed is sent again (the aggregator drops duplicates),
// and the birth tells the aggregator where the spool starts.
void Agent::Impl::start_over_from_spool() {
  std::uint64_t first = 0;
  {
    std::lock_guard lk(mu);
    first = sender->restart_from_spool_locked();
    confirms.reconnected();  // the cursor is at the first unconfirmed seq already
  }
  presence->publish_birth(first);
  loop.next_heartbeat = std::chrono::steady_clock::now() + config.heartbeat_interval;
}

void Agent::Impl::resubscribe_if_due() {
  if (!subscribes() || loop.subscribed || std::chrono::steady_clock::now() < loop.subscribe_retry_at) return;
  loop.subscribed = subscribe_confirmations();
  if (loop.subscribed) log->info("subscribed to {} on a later attempt", subscribed_what());
  loop.subscribe_backoff = std::min(loop.subscribe_backoff * 2, kMaxSubscribeBackoff);
  loop.subscribe_retry_at = std::chrono::steady_clock::now() + loop.subscribe_backoff;
}

// Command results, a birth asked for by a remote command, the heartbeat when due.
void Agent::Impl::publish_control_messages() {
  if (connection->is_connected()) publish_outgoing();
  if (take_rebirth() && connection->is_connected()) {
    std::uint64_t first = 0;
    {
      std::lock_guard lk(mu);
      first = backlog->first_seq();
    }
    presence->publish_birth(first);
  }
  if (std::chrono::steady_clock::now() >= loop.next_heartbeat) publish_heartbeat_now();
}

void Agent::Impl::publish_heartbeat_now() {
  presence->publish_heartbeat();
  loop.next_heartbeat = std::chrono::steady_clock::now() + config.heartbeat_interval;
}

// Nothing in flight: until there is something to send or do, half a second at most.
void Agent::Impl::wait_for_work() {
  std::unique_lock lk(mu);
  cv.wait_for(lk, std::chrono::milliseconds(500), [&] {
    return stopping || backlog->next_seq() > sender->cursor() || !connected || confirmation_pending_locked() ||
           rebirth_requested || !outgoing.empty();
  });
}

// Caller holds mu. A confirmation that releases events, or a resend request, waits for run().
bool Agent::Impl::confirmation_pending_locked() const {
  return confirms.pending(backlog->first_seq(), backlog->next_seq());
}

bool Agent::Impl::subscribe_confirmations() {
  try {
    // QoS 0: a confirmation is a watermark, and the next one (or the retained one at the next
    // subscribe) replaces one that is lost. On NATS's MQTT listener a QoS 1 subscription is a
    // JetStream consumer per agent, one that dies with its node (docs/scale-out.md). Fleet
    // bundles are retained too: the next subscribe brings one that was lost.
    std::vector<std::string> topics;
    if (config.aggregator_confirms()) topics.push_back(confirm_topic);
    topics.insert(topics.end(), extra_topics.begin(), extra_topics.end());
    if (connection->subscribe(topics)) return true;
    note_error("subscribing to " + subscribed_what() + " did not complete; trying again");
  } catch (const mqtt::exception& e) {
    note_error("cannot subscribe to " + subscribed_what() + ": " + e.what() +
               "; hint: the broker's ACL must let this agent read its confirm topic (and the fleet bundle topics "
               "when fleet.key_file is set). Events stay in the spool until they are confirmed; trying again");
  }
  return false;
}

bool Agent::Impl::subscribes() const { return config.aggregator_confirms() || !extra_topics.empty(); }
std::string Agent::Impl::subscribed_what() const {
  std::string what = config.aggregator_confirms() ? confirm_topic + " (the aggregator's delivery confirmations)" : "";
  if (!extra_topics.empty()) what += std::string(what.empty() ? "" : " and ") + "the fleet bundle topics";
  return what;
}

// On the publisher's thread, which owns the client: QoS 1, a message lost on a dropped
// connection is not sent again (the operator sees no result and may send the command again).
void Agent::Impl::publish_outgoing() {
  std::deque<std::pair<std::string, std::string>> out;
  {
    std::lock_guard lk(mu);
    out.swap(outgoing);
  }
  for (auto& [topic, payload] : out) {
    try {
      connection->publish(topic, payload.data(), payload.size(), 1, false);
      sender->spent_uplink(topic, payload.size(), 1);
    } catch (const mqtt::exception& e) {
      note_error("publish on " + topic + " failed: " + e.what());
    }
  }
}

bool Agent::Impl::take_rebirth() {
  std::lock_guard lk(mu);
  return std::exchange(rebirth_requested, false);
}

// Paho's thread: the client lost a connection it had; run() replaces it before reconnecting.
void Agent::Impl::on_connection_lost(const std::string& cause) {
  {
    std::lock_guard lk(mu);
    connected = false;
    connection_lost = true;
  }
  cv.notify_all();
  log->warn("connection to broker lost{}{}", cause.empty() ? "" : ": ", cause);
}

// The broker keeps the last will of a connection; the next connect carries one signed with the
// new key. Events in flight are sent again from the first unconfirmed seq, as after any
// reconnect (the aggregator drops duplicates), now signed with the new key.
void Agent::Impl::reconnect_for_new_key() {
  log->info("reconnecting once so the last will is signed with the new key");
  {
    std::lock_guard lk(mu);
    connected = false;
    connection_lost = true;  // a fresh client: nothing of the old one's queue is written first
  }
  connection->disconnect();
}

bool Agent::Impl::take_connection_lost() {
  std::lock_guard lk(mu);
  return std::exchange(connection_lost, false);
}

bool Agent::Impl::try_connect() {
  // The last will is the death, signed in advance.
  if (auto failed = connection->connect(state_topic, presence->death()); !failed.empty()) {
    note_error(failed);
    return false;
  }
  {
    std::lock_guard lk(mu);
    if (counters.batches_sent > 0 || connected_once) counters.reconnects += 1;
    connected = true;
    connected_once = true;
    counters.last_error.clear();  // so the next failure is logged again
  }
  cv.notify_all();
  return true;
}

// Logs a jump seen since the last call; true if there was one.
bool Agent::Impl::report_clock_jump() {
  std::optional<ClockJump> jump;
  std::uint32_t n = 0;
  {
    std::lock_guard lk(mu);
    jump.swap(unlogged_jump);
    n = clock_watch.jumps();
  }
  if (!jump) return false;
  log->warn(
      "the board's clock jumped {:+.3f} s (jump {} since start); events accepted before it are sent on the new "
      "clock, "
      "the spool's age bound follows it. Repeated jumps: check the board's NTP (docs/agent.md, \"Time\")",
      static_cast<double>(jump->delta_ms) / 1000.0, n);
  return true;
}

}  // namespace postwatch::agent
