#include "inflight_publisher.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

namespace postwatch::agent {

InflightPublisher::InflightPublisher(const AgentConfig& config, const IndicatorCatalogue& catalogue,
                                     const std::string& topic, AgentShared& shared, BrokerConnection& connection,
                                     const AgentIdentity& identity)
    : config_(config),
      topic_(topic),
      shared_(shared),
      connection_(connection),
      identity_(identity),
      uplink_(config.uplink_max_kbit_s * 1000 / 8) {
  batch_.agent_id = config.agent_id;
  batch_.post_id = config.post_id;
  if (config.compression != BatchCompression::None) packer_ = std::make_unique<BatchPacker>();
  if (config.compression == BatchCompression::ZstdDictionary)
    dict_packer_ = std::make_unique<BatchPacker>(BatchDictionary::for_catalogue(catalogue));
}

std::uint64_t InflightPublisher::restart_from_spool_locked() {
  clear_inflight_locked();
  cursor_ = shared_.backlog->first_seq();
  shared_.urgent.forget_sent();  // the main lane goes over everything again
  return cursor_;
}

void InflightPublisher::drop_inflight() { clear_inflight(); }

// Drops the in-flight batches (their PUBACKs no longer matter); an urgent batch's events go
// back on the urgent lane, so a lost connection does not send them to the back of the queue.
void InflightPublisher::clear_inflight_locked() {
  for (auto& ib : inflight_)
    if (!ib.urgent.empty()) shared_.urgent.returned(std::move(ib.urgent));
  inflight_.clear();
}

void InflightPublisher::clear_inflight() {
  std::lock_guard lk(shared_.mu);
  clear_inflight_locked();
}

void InflightPublisher::apply_confirmations() {
  auto& s = shared_;
  std::uint64_t released = 0, through = 0, resend = 0, resend_events = 0;
  {
    std::lock_guard lk(s.mu);
    if (auto release = s.confirms.releasable(s.backlog->first_seq(), s.backlog->next_seq())) {
      auto before = s.backlog->stats().events;
      s.backlog->release_through(*release);
      released = before - s.backlog->stats().events;
      through = *release;
      s.counters.confirmed += released;
      // Nothing confirmed needs sending (again).
      cursor_ = std::max(cursor_, s.backlog->first_seq());
    }
    if (auto r = s.confirms.take_resend(cursor_, s.backlog->first_seq())) {
      clear_inflight_locked();  // their PUBACKs no longer matter: everything from the new cursor is sent again
      s.urgent.forget_sent();   // a seq the urgent lane sent may be the one missing
      resend = r->from;
      cursor_ = r->cursor;
      resend_events = s.backlog->next_seq() - cursor_;
    }
  }
  if (released > 0) {
    s.cv.notify_all();
    s.log->debug("aggregator confirmed through seq {}: released {} event(s)", through, released);
  }
  if (resend != 0) s.log->info("aggregator asked to resend from seq {} ({} events)", resend, resend_events);
}

// The urgent lane (docs/agent.md, "Urgent readings"): urgent events the main lane will not
// reach within its next batch go now, in their own batches, outside the in-flight window
// (Paho's allows twice it) and without waiting for the uplink cap (their bytes still count
// against it, so the main lane waits for them).
void InflightPublisher::send_urgent() {
  auto& s = shared_;
  while (inflight_.size() < 2 * std::size_t{config_.max_inflight_batches}) {
    std::vector<IndicatorEvent> events;
    {
      std::lock_guard lk(s.mu);
      if (s.urgent.waiting() == 0) return;
      // Below first_seq the spool no longer holds them: sent, or dropped by its overflow policy.
      const std::uint64_t from = std::max(cursor_, s.backlog->first_seq());
      s.urgent.passed(from);
      events = s.urgent.take(from + config_.batch_max_events, kMaxUrgentBatch);
      if (events.empty()) return;
      // The batch gets shifted copies: the lane keeps the events as stamped, in case they
      // go back on it (a lost connection) and are shifted again for their next batch.
      batch_.events = events;
      batch_.catalogue_version = events.front().catalogue_version;  // one Agent, one catalogue
      s.shift_to_current_clock_locked(batch_.events);
      batch_.clock_epoch = s.clock_watch.jumps();
      batch_.sent_at_ms = now_utc_ms();
    }
    batch_.urgent = true;
    auto payload = compress(encode_batch(batch_, signing_key()));
    batch_.urgent = false;
    InflightBatch ib{nullptr, 0, events.size(), std::move(events)};
    try {
      ib.token = connection_.publish(topic_, payload.data(), payload.size(), 1, false);
    } catch (const mqtt::exception& e) {
      s.note_error(std::string("urgent publish failed: ") + e.what());
      std::lock_guard lk(s.mu);
      s.urgent.returned(std::move(ib.urgent));
      return;
    }
    spent_uplink(topic_, payload.size(), 1);
    s.log->debug("sent {} urgent event(s) ahead of the spool's queue (seq {} to {})", ib.count, ib.urgent.front().seq,
                 ib.urgent.back().seq);
    inflight_.push_back(std::move(ib));
  }
}

std::uint64_t InflightPublisher::read_next_batch() {
  auto& s = shared_;
  events_.clear();
  std::uint64_t range_last = 0;
  std::unique_lock lk(s.mu);
  if (s.stopping) return 0;
  s.urgent.passed(cursor_);
  std::size_t ready = s.backlog->next_seq() - cursor_;
  if (ready == 0) return 0;
  if (ready < config_.batch_max_events && inflight_.empty() && config_.batch_max_delay.count() > 0) {
    // A partial batch waits up to batch_max_delay for more events.
    s.cv.wait_for(lk, config_.batch_max_delay, [&] {
      return s.stopping || s.flush_requested || s.backlog->next_seq() - cursor_ >= config_.batch_max_events;
    });
  }
  s.flush_requested = false;
  s.check_clock_locked();
  s.backlog->read(cursor_, config_.batch_max_events, events_);
  if (!events_.empty()) {
    // A batch names one catalogue version: events spooled before a catalogue rollout
    // go in batches of their own, ahead of the ones validated against the new catalogue.
    const auto version = events_.front().catalogue_version;
    events_.erase(std::find_if(events_.begin(), events_.end(),
                               [&](const IndicatorEvent& e) { return e.catalogue_version != version; }),
                  events_.end());
    batch_.catalogue_version = version;
    range_last = events_.back().seq;
    // Seqs the urgent lane already delivered to the broker are not sent twice.
    std::erase_if(events_, [&](const IndicatorEvent& e) { return s.urgent.skips(e.seq); });
  }
  s.shift_to_current_clock_locked(events_);
  batch_.clock_epoch = s.clock_watch.jumps();
  batch_.sent_at_ms = now_utc_ms();
  return range_last;
}

void InflightPublisher::fill_window() {
  auto& s = shared_;
  while (inflight_.size() < config_.max_inflight_batches) {
    const std::uint64_t range_last = read_next_batch();
    if (range_last == 0) return;
    if (events_.empty()) {
      // All of them went on the urgent lane: the cursor moves on, in order with the batches before.
      cursor_ = range_last + 1;
      inflight_.push_back(InflightBatch{nullptr, range_last, 0, {}});
      continue;
    }
    const std::size_t read_count = events_.size();
    batch_.urgent = false;
    batch_.events.swap(events_);
    auto payload = encode_batch(batch_, signing_key());
    while (payload.size() > WireLimits::max_payload_bytes && batch_.events.size() > 1) {
      batch_.events.resize(batch_.events.size() / 2);  // long notes and tags: fewer events per message
      payload = encode_batch(batch_, signing_key());
    }
    payload = compress(std::move(payload));  // after signing: the signature covers the plain batch
    // Under uplink.max_kbit_s the batch waits for the link, a slice at a time so PUBACKs,
    // confirmations and heartbeats are not held up; it is read from the spool again then.
    if (auto wait = uplink_.delay(mqtt_publish_bytes(topic_, payload.size(), 1), std::chrono::steady_clock::now());
        wait.count() > 0) {
      std::unique_lock lk(s.mu);
      s.cv.wait_for(lk, std::min(wait, kUplinkWaitSlice), [&] { return s.stopping; });
      return;
    }
    // Halved to fit: the cursor goes on from the first event left out, skipped seqs or not.
    InflightBatch ib{
        nullptr, batch_.events.size() == read_count ? range_last : batch_.events.back().seq, batch_.events.size(), {}};
    batch_.events.swap(events_);
    try {
      ib.token = connection_.publish(topic_, payload.data(), payload.size(), 1, false);
    } catch (const mqtt::exception& e) {
      s.note_error(std::string("publish failed: ") + e.what());
      return;
    }
    spent_uplink(topic_, payload.size(), 1);
    cursor_ = ib.last_seq + 1;
    inflight_.push_back(std::move(ib));
  }
}

// The oldest batch's PUBACK: the broker has it. In Broker mode that releases its events; in
// Aggregator mode they wait for the aggregator's confirmation (apply_confirmations).
void InflightPublisher::await_oldest_ack() {
  auto& s = shared_;
  auto& front = inflight_.front();
  try {
    if (front.token && !front.token->wait_for(std::chrono::milliseconds(100))) return;
  } catch (const mqtt::exception& e) {
    s.note_error(std::string("delivery failed: ") + e.what());
    std::lock_guard lk(s.mu);
    restart_from_spool_locked();
    return;
  }
  {
    std::lock_guard lk(s.mu);
    if (front.token) {
      s.counters.sent += front.count;
      s.counters.batches_sent += 1;
    }
    if (!front.urgent.empty()) {
      // The broker has them: the main lane skips them. Nothing is released, and
      // sent_through_seq stays the main lane's (the aggregator reads it as "sent in order").
      s.urgent.sent(front.urgent);
      s.counters.urgent_sent += front.count;
    } else {
      if (!config_.aggregator_confirms()) s.backlog->release_through(front.last_seq);
      s.counters.sent_through_seq = std::max(s.counters.sent_through_seq, front.last_seq);
    }
  }
  inflight_.pop_front();
  s.cv.notify_all();
}

// The payload as uplink.compression wants it. The catalogue's dictionary only once the
// aggregator said it holds the same one: an aggregator on another catalogue would refuse every
// batch as unknown_dictionary.
std::vector<std::uint8_t> InflightPublisher::compress(std::vector<std::uint8_t> plain) {
  if (!packer_) return plain;
  BatchPacker* use = packer_.get();
  if (dict_packer_) {
    const std::uint32_t theirs = aggregator_dictionary_.load();
    if (theirs == dict_packer_->dictionary_id()) use = dict_packer_.get();
    if (theirs != dictionary_noted_ && theirs != 0) {
      dictionary_noted_ = theirs;
      if (use == dict_packer_.get())
        shared_.log->info("the aggregator unpacks with this catalogue's dictionary {:08x}: batches use it", theirs);
      else
        shared_.log->warn(
            "the aggregator unpacks with dictionary {:08x}, this agent's catalogue gives {:08x}: batches are "
            "compressed without it (run the same catalogue at both ends: docs/agent.md, \"Thin links\")",
            theirs, dict_packer_->dictionary_id());
    }
  }
  auto packed = use->pack(plain);
  // A batch of one event barely compresses without the dictionary: the envelope outweighs
  // the gain, and the plain batch is what every aggregator reads anyway.
  return packed.size() < plain.size() ? packed : plain;
}

void InflightPublisher::spent_uplink(std::string_view topic, std::size_t payload, int qos) {
  uplink_.spend(mqtt_publish_bytes(topic, payload, qos), std::chrono::steady_clock::now());
  uplink_sent_ = uplink_.sent_bytes();
}

void InflightPublisher::measure_uplink_rate() { uplink_rate_ = uplink_.take_rate(std::chrono::steady_clock::now()); }

}  // namespace postwatch::agent
