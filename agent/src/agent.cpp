#include "postwatch/agent/agent.hpp"

#include "agent_presence.hpp"
#include "agent_shared.hpp"
#include "broker_connection.hpp"
#include "inflight_publisher.hpp"

#include "postwatch/agent/agent_identity.hpp"
#include "postwatch/agent/confirm_tracker.hpp"

#include "postwatch/clock.hpp"
#include "postwatch/enrolment.hpp"
#include "postwatch/topics.hpp"
#include "postwatch/wire_codec.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <thread>
#include <utility>

namespace postwatch::agent {

std::string validate_event(const IndicatorCatalogue& catalogue, const IndicatorEvent& e, const Post* post) {
  const Indicator* ind = catalogue.find_indicator(e.indicator);
  if (!ind) return "unknown indicator '" + e.indicator + "'";
  if (e.text.size() > WireLimits::max_text_bytes)
    return "text longer than " + std::to_string(WireLimits::max_text_bytes) + " bytes";
  if (e.note.size() > WireLimits::max_note_bytes)
    return "note longer than " + std::to_string(WireLimits::max_note_bytes) + " bytes";
  if (e.tags.size() > 16) return "more than 16 tags";
  for (const auto& [k, v] : e.tags)
    if (k.empty() || k.size() > 64 || v.size() > 64) return "tag keys must be 1-64 bytes and values at most 64 bytes";
  return post ? catalogue.check_value(*post, *ind, e.kind, e.number, e.text)
              : catalogue.check_value(*ind, e.kind, e.number, e.text);
}

struct Agent::Impl : AgentShared {
  AgentConfig config;
  std::shared_ptr<const IndicatorCatalogue> catalogue;
  std::string region;
  std::string topic;
  std::string state_topic;
  std::string heartbeat_topic;
  std::string confirm_topic;
  std::vector<std::string> extra_topics;  // set before start()
  Agent::MessageHandler on_extra;
  std::uint64_t reported_drops = 0;  // drops already reported as an agent_events_dropped event

  std::set<std::string> confirm_problems_logged;
  const Post* post_entry = nullptr;  // in *catalogue
  // Enrolled (docs/security.md): what it publishes is signed with its key, and only
  // confirmations signed by one of the aggregator's keys are obeyed.
  AgentIdentity identity;
  // Made in the constructor, in this order; each refers to the ones before.
  std::optional<BrokerConnection> connection;  // owned by the publisher thread
  std::optional<InflightPublisher> sender;     // the publisher thread's, but for its uplink counters
  std::optional<AgentPresence> presence;       // birth, heartbeat, death
  std::thread publisher;

  Impl(AgentConfig c, std::shared_ptr<const IndicatorCatalogue> cat, std::unique_ptr<EventBacklog> b,
       std::shared_ptr<spdlog::logger> l)
      : AgentShared(std::move(b), std::move(l)),
        config(std::move(c)),
        catalogue(std::move(cat)),
        identity(config.identity, log) {
    const Post* post = catalogue->find_post(config.post_id);
    if (!post) throw ConfigError("post_id: '" + config.post_id + "' is not a post in the catalogue");
    post_entry = post;
    region = post->region;
    topic = topics::agent_topic(region, config.post_id, config.agent_id, topics::Channel::Events);
    state_topic = topics::agent_topic(region, config.post_id, config.agent_id, topics::Channel::State);
    heartbeat_topic = topics::agent_topic(region, config.post_id, config.agent_id, topics::Channel::Heartbeat);
    confirm_topic = topics::agent_topic(region, config.post_id, config.agent_id, topics::Channel::Confirm);
    reported_drops = backlog->stats().dropped;
    connection.emplace(
        config, log, [this](const mqtt::const_message_ptr& m) { on_confirm(m); },
        [this](const std::string& cause) { on_connection_lost(cause); });
    if (config.uses_tls() && !config.tls.enabled)
      throw ConfigError("tls: broker_uri " + config.broker_uri + " uses TLS and needs a tls section");
    clock_sync = read_clock_sync(now_utc_ms());
    identity.load();
    sender.emplace(config, *catalogue, topic, *this, *connection, identity);
    presence.emplace(config, *this, identity, *connection, *sender, state_topic, heartbeat_topic);
  }

  // Upkeep once a second: the backlog's fsync/age bounds, and drops reported as an event.
  void maintain() {
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

  void submit_internal(IndicatorEvent e) {
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
  void run() {
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

  // What the send loop schedules; reset at each start().
  struct SendLoop {
    std::mt19937_64 rng{std::random_device{}()};
    std::chrono::milliseconds backoff{250};
    std::chrono::steady_clock::time_point next_maintenance = std::chrono::steady_clock::now();
    std::chrono::steady_clock::time_point next_connect = std::chrono::steady_clock::now();
    std::chrono::steady_clock::time_point next_heartbeat;
    // A refused confirm subscription (a busy broker's SUBACK failure) is tried again while
    // connected, with backoff: without it nothing would leave the spool until a reconnect.
    bool subscribed = false;
    std::chrono::milliseconds subscribe_backoff{1000};
    std::chrono::steady_clock::time_point subscribe_retry_at{};
  };
  static constexpr std::chrono::milliseconds kMaxConnectBackoff{30000};
  static constexpr std::chrono::milliseconds kMaxSubscribeBackoff{30000};

  bool stop_requested() const {
    std::lock_guard lk(mu);
    return stopping;
  }

  // Once a second: the spool's upkeep, and keys taken up.
  void upkeep(std::chrono::steady_clock::time_point now) {
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
  void follow_confirmations(std::chrono::steady_clock::time_point now) {
    // Subscribing again also brings the retained confirmation back, in case the last one
    // was lost on its way (the subscription is QoS 0).
    if (connection->is_connected() && resend_if_stalled(now)) subscribe_confirmations();
    sender->apply_confirmations();
  }

  // Not connected: waits out the backoff (in short slices, so upkeep keeps running through an
  // outage), or connects. True once connected, with the birth sent.
  bool reconnect(std::chrono::steady_clock::time_point now) {
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
  void back_off_connecting() {
    auto wait = std::chrono::milliseconds(
        std::uniform_int_distribution<long>(loop.backoff.count() / 2, loop.backoff.count())(loop.rng));
    loop.backoff = std::min(loop.backoff * 2, kMaxConnectBackoff);
    loop.next_connect = std::chrono::steady_clock::now() + wait;
  }

  // A new connection: everything unconfirmed is sent again (the aggregator drops duplicates),
  // and the birth tells the aggregator where the spool starts.
  void start_over_from_spool() {
    std::uint64_t first = 0;
    {
      std::lock_guard lk(mu);
      first = sender->restart_from_spool_locked();
      confirms.reconnected();  // the cursor is at the first unconfirmed seq already
    }
    presence->publish_birth(first);
    loop.next_heartbeat = std::chrono::steady_clock::now() + config.heartbeat_interval;
  }

  void resubscribe_if_due() {
    if (!subscribes() || loop.subscribed || std::chrono::steady_clock::now() < loop.subscribe_retry_at) return;
    loop.subscribed = subscribe_confirmations();
    if (loop.subscribed) log->info("subscribed to {} on a later attempt", subscribed_what());
    loop.subscribe_backoff = std::min(loop.subscribe_backoff * 2, kMaxSubscribeBackoff);
    loop.subscribe_retry_at = std::chrono::steady_clock::now() + loop.subscribe_backoff;
  }

  // Command results, a birth asked for by a remote command, the heartbeat when due.
  void publish_control_messages() {
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

  void publish_heartbeat_now() {
    presence->publish_heartbeat();
    loop.next_heartbeat = std::chrono::steady_clock::now() + config.heartbeat_interval;
  }

  // Nothing in flight: until there is something to send or do, half a second at most.
  void wait_for_work() {
    std::unique_lock lk(mu);
    cv.wait_for(lk, std::chrono::milliseconds(500), [&] {
      return stopping || backlog->next_seq() > sender->cursor() || !connected || confirmation_pending_locked() ||
             rebirth_requested || !outgoing.empty();
    });
  }

  // Events the broker acknowledged but the aggregator did not confirm for a while are sent again
  // (ConfirmTracker::stalled): through apply_confirmations, like the aggregator's own resend request.
  bool resend_if_stalled(std::chrono::steady_clock::time_point now) {
    std::optional<ConfirmTracker::StallResend> resend;
    {
      std::lock_guard lk(mu);
      const std::uint64_t window = std::uint64_t{config.max_inflight_batches} * config.batch_max_events;
      resend = confirms.stalled(now, backlog->first_seq(), backlog->next_seq(), counters.sent_through_seq, window);
      if (!resend) return false;
      counters.stall_resends += 1;
    }
    log->info(
        "no confirmation for {} s of events the broker acknowledged through seq {}; sending again from seq {} "
        "(the aggregator drops what it has)",
        resend->waited.count() / 1000, resend->through, resend->from);
    return true;
  }

  // Caller holds mu. A confirmation that releases events, or a resend request, waits for run().
  bool confirmation_pending_locked() const { return confirms.pending(backlog->first_seq(), backlog->next_seq()); }

  // Logs a problem with the confirmations once (a retained or repeated message would flood the log).
  void note_confirm_problem(const std::string& what) {
    {
      std::lock_guard lk(mu);
      if (confirm_problems_logged.size() >= 32 || !confirm_problems_logged.insert(what).second) return;
    }
    log->warn("{}", what);
  }

  // Paho's thread: a DeliveryConfirm on our confirm topic.
  void on_confirm(const mqtt::const_message_ptr& msg) {
    if (msg->get_topic() != confirm_topic) {
      if (on_extra && std::find(extra_topics.begin(), extra_topics.end(), msg->get_topic()) != extra_topics.end())
        on_extra(msg->get_topic(), msg->get_payload_str());
      return;
    }
    const auto& p = msg->get_payload();
    DeliveryConfirm c;
    auto err = decode_delivery_confirm({reinterpret_cast<const std::uint8_t*>(p.data()), p.size()}, c);
    std::string problem;
    if (err != DecodeError::None)
      problem = std::string("ignored a delivery confirmation on ") + confirm_topic + ": " + std::string(to_string(err));
    else if (c.agent_id != config.agent_id || c.post_id != config.post_id)
      problem = "ignored a delivery confirmation on " + confirm_topic + " for agent " + c.post_id + "/" + c.agent_id +
                ", not this one (" + config.post_id + "/" + config.agent_id + ")";
    else if (auto why = identity.confirm_problem(c, {reinterpret_cast<const std::uint8_t*>(p.data()), p.size()});
             !why.empty())
      problem = "ignored a delivery confirmation on " + confirm_topic + ": " + why + "; nothing is released";
    if (!problem.empty()) {
      {
        std::lock_guard lk(mu);
        counters.confirm_rejected += 1;
      }
      note_confirm_problem(problem);
      return;
    }
    identity.note_key_notice(c);  // verified: its rotation notice, if any, is the aggregator's
    sender->aggregator_dictionary(c.batch_dictionary);
    std::uint64_t issued_through = 0;
    ConfirmTracker::Confirmed outcome;
    {
      std::lock_guard lk(mu);
      issued_through = backlog->next_seq() - 1;
      outcome = confirms.confirmed(c.through_seq, c.resend_from, issued_through);
      if (outcome.refused) counters.confirm_rejected += 1;
      counters.confirmed_through_seq = confirms.confirmed_through();
      if (outcome.resend_requested) counters.resend_requests += 1;
    }
    if (outcome.first_refusal)
      log->warn(
          "the aggregator confirms seq {} but this spool has only issued up to {}; was the spool reset? Nothing is "
          "released on this confirmation. A spool that starts over needs a new agent_id (docs/agent.md, \"Sequence "
          "numbers\")",
          c.through_seq, issued_through);
    if (!outcome.refused) cv.notify_all();
  }

  bool subscribe_confirmations() {
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

  bool subscribes() const { return config.aggregator_confirms() || !extra_topics.empty(); }
  std::string subscribed_what() const {
    std::string what = config.aggregator_confirms() ? confirm_topic + " (the aggregator's delivery confirmations)" : "";
    if (!extra_topics.empty()) what += std::string(what.empty() ? "" : " and ") + "the fleet bundle topics";
    return what;
  }

  // On the publisher's thread, which owns the client: QoS 1, a message lost on a dropped
  // connection is not sent again (the operator sees no result and may send the command again).
  void publish_outgoing() {
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

  bool take_rebirth() {
    std::lock_guard lk(mu);
    return std::exchange(rebirth_requested, false);
  }

  // Paho's thread: the client lost a connection it had; run() replaces it before reconnecting.
  void on_connection_lost(const std::string& cause) {
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
  void reconnect_for_new_key() {
    log->info("reconnecting once so the last will is signed with the new key");
    {
      std::lock_guard lk(mu);
      connected = false;
      connection_lost = true;  // a fresh client: nothing of the old one's queue is written first
    }
    connection->disconnect();
  }

  bool take_connection_lost() {
    std::lock_guard lk(mu);
    return std::exchange(connection_lost, false);
  }

  bool try_connect() {
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
  bool report_clock_jump() {
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

  SendLoop loop;  // the publisher thread's
  std::uint64_t maintenance_ticks = 0;
  bool connected_once = false;
};

Agent::Agent(AgentConfig config, std::shared_ptr<const IndicatorCatalogue> catalogue,
             std::unique_ptr<EventBacklog> backlog, std::shared_ptr<spdlog::logger> log)
    : impl_(std::make_unique<Impl>(std::move(config), std::move(catalogue), std::move(backlog), std::move(log))) {}

Agent::~Agent() { stop(); }

void Agent::subscribe_also(std::vector<std::string> topics, MessageHandler handler) {
  impl_->extra_topics = std::move(topics);
  impl_->on_extra = std::move(handler);
}

void Agent::set_fleet_report(const FleetReport& report) {
  std::lock_guard lk(impl_->mu);
  impl_->presence->set_fleet_report_locked(report);
}

void Agent::start() {
  auto& d = *impl_;
  if (d.publisher.joinable()) return;
  d.connection->open();
  {
    std::lock_guard lk(d.mu);
    d.stopping = false;
  }
  d.publisher = std::thread([this] { impl_->run(); });
}

void Agent::stop() {
  auto& d = *impl_;
  {
    std::lock_guard lk(d.mu);
    d.stopping = true;
  }
  d.cv.notify_all();
  if (d.publisher.joinable()) d.publisher.join();
  // A clean stop says so itself: the broker sends the last will only on a lost connection.
  d.connection->close(d.state_topic, d.presence->death());
}

void Agent::rebirth() {
  {
    std::lock_guard lk(impl_->mu);
    impl_->rebirth_requested = true;
  }
  impl_->cv.notify_all();
}

void Agent::flush() {
  {
    std::lock_guard lk(impl_->mu);
    impl_->flush_requested = true;
  }
  impl_->cv.notify_all();
}

std::uint64_t Agent::resend_from(std::uint64_t seq) {
  auto& d = *impl_;
  std::uint64_t from = 0;
  {
    std::lock_guard lk(d.mu);
    if (!d.config.aggregator_confirms()) return 0;  // a broker-mode agent holds nothing once sent
    from = d.confirms.request_resend_within(seq, d.backlog->first_seq(), d.backlog->next_seq());
    if (from == 0) return 0;
  }
  d.cv.notify_all();
  return from;
}

void Agent::publish_message(std::string topic, std::string payload) {
  {
    std::lock_guard lk(impl_->mu);
    // A few at most (one per remote command): bounded all the same.
    if (impl_->outgoing.size() >= 64) impl_->outgoing.pop_front();
    impl_->outgoing.emplace_back(std::move(topic), std::move(payload));
  }
  impl_->cv.notify_all();
}

SubmitResult Agent::submit(IndicatorEvent event) {
  auto& d = *impl_;
  SubmitResult r;
  r.error = validate_event(*d.catalogue, event, d.post_entry);
  std::unique_lock lk(d.mu);
  d.check_clock_locked();  // before the stamp: an event stamped after a jump is on the new clock
  if (event.observed_at_ms == 0) event.observed_at_ms = now_utc_ms();
  event.catalogue_version = d.catalogue->version();
  if (r.error.empty()) {
    try {
      const Indicator* ind = d.catalogue->find_indicator(event.indicator);
      std::optional<IndicatorEvent> urgent;
      // Only with the aggregator's confirmations: a broker-mode agent's holes are given up after
      // 4096 later seqs, and an aggregator that restarts replays a stored urgent seq as an
      // ordinary one, so a backlog behind it could be given up while the agent no longer holds it.
      if (ind && ind->is_urgent(event.number) && d.config.aggregator_confirms())
        urgent = event;  // a copy: the spool takes the event
      r.seq = d.backlog->append(std::move(event));
      r.accepted = true;
      d.counters.accepted += 1;
      if (urgent) {
        urgent->seq = r.seq;
        d.urgent.offer(*urgent);  // a full lane leaves it to the spool's order
      }
    } catch (const BacklogRefused& e) {
      r.error = e.what();
    }
  }
  if (!r.accepted) d.counters.rejected += 1;
  lk.unlock();
  if (r.accepted) d.cv.notify_all();
  return r;
}

bool Agent::wait_until_drained(std::chrono::milliseconds timeout) {
  std::unique_lock lk(impl_->mu);
  return impl_->cv.wait_for(lk, timeout, [&] { return impl_->backlog->stats().events == 0; });
}

bool Agent::wait_until_connected(std::chrono::milliseconds timeout) {
  std::unique_lock lk(impl_->mu);
  return impl_->cv.wait_for(lk, timeout, [&] { return impl_->connected; });
}

AgentStats Agent::stats() const {
  std::lock_guard lk(impl_->mu);
  AgentStats s = impl_->counters;
  s.connected = impl_->connected;
  s.started_at_ms = impl_->started_ms;
  s.backlog = impl_->backlog->stats();
  s.clock_sync = impl_->clock_sync;
  s.clock_jumps = impl_->clock_watch.jumps();
  s.urgent_overflow = impl_->urgent.overflowed();
  if (const auto& j = impl_->clock_watch.last_jump()) s.last_clock_jump_ms = j->delta_ms;
  return s;
}

std::vector<std::string> Agent::aggregator_key_ids() const { return impl_->identity.trusted_key_ids(); }

AgentMetrics Agent::metrics() const {
  std::lock_guard lk(impl_->mu);
  return impl_->presence->metrics_locked();
}

const AgentConfig& Agent::config() const { return impl_->config; }
std::string Agent::events_topic() const { return impl_->topic; }
std::string Agent::state_topic() const { return impl_->state_topic; }
std::string Agent::confirm_topic() const { return impl_->confirm_topic; }

}  // namespace postwatch::agent
