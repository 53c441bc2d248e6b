#include "postwatch/agent/agent.hpp"

#include "agent_impl.hpp"

#include "postwatch/clock.hpp"
#include "postwatch/enrolment.hpp"
#include "postwatch/topics.hpp"
#include "postwatch/wire_codec.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <mutex>
#include <optional>
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

Agent::Impl::Impl(AgentConfig c, std::shared_ptr<const IndicatorCatalogue> cat, std::unique_ptr<EventBacklog> b,
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
      config, log, [this](const mqtt::const_message_ptr& m) { on_message(m); },
      [this](const std::string& cause) { on_connection_lost(cause); });
  if (config.uses_tls() && !config.tls.enabled)
    throw ConfigError("tls: broker_uri " + config.broker_uri + " uses TLS and needs a tls section");
  clock_sync = read_clock_sync(now_utc_ms());
  identity.load();
  sender.emplace(config, *catalogue, topic, *this, *connection, identity);
  presence.emplace(config, *this, identity, *connection, *sender, state_topic, heartbeat_topic);
  confirm_listener.emplace(config, *this, identity, *sender, confirm_topic);
}

void Agent::Impl::on_message(const mqtt::const_message_ptr& msg) {
  if (msg->get_topic() == confirm_topic)
    confirm_listener->on_confirm(msg->get_payload());
  else if (on_extra && std::find(extra_topics.begin(), extra_topics.end(), msg->get_topic()) != extra_topics.end())
    on_extra(msg->get_topic(), msg->get_payload_str());
}

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
