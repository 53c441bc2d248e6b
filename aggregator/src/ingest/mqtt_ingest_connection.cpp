// MqttIngest's connection to the broker: connecting and retrying with backoff, the Paho
// client's callbacks (connected, lost, each message handed to the io_context), and a fresh
// client when the broker closes every connection right after it is made.
#include "ingest/mqtt_ingest_impl.hpp"

#include "postwatch/clock.hpp"
#include "postwatch/mqtt_options.hpp"

#include <algorithm>

namespace postwatch::aggregator {

mqtt::connect_options MqttIngest::Impl::options() const {
  auto b = mqtt::connect_options_builder()
               .clean_session(false)  // the broker keeps our QoS 1 messages while we restart
               .keep_alive_interval(std::chrono::seconds(20))
               .max_inflight(kMaxInflight);
  // Paho's automatic reconnect goes on with the URI it reached last, never the list from its
  // start (paho.mqtt.c#1661): with a list, a lost connection is a new connect() (start()).
  if (uris.size() > 1)
    b.servers(std::make_shared<mqtt::string_collection>(uris));
  else
    b.automatic_reconnect(std::chrono::milliseconds(250), std::chrono::seconds(10));
  if (will) b.will(*will);
  set_mqtt_login(b, login.username, login.password);
  if (uris.front().starts_with("ssl://") || uris.front().starts_with("mqtts://"))
    set_mqtt_tls(
        b,
        {.ca_file = login.ca_file, .cert_file = login.cert_file, .key_file = login.key_file, .verify_hostname = true});
  return b.finalize();
}

// One connect at a time. A connect() while Paho still has one in progress is refused
// (MQTTASYNC_COMMAND_IGNORED, -18) yet Paho may still call back for it, with the token the
// refused call has freed: ASan saw that use-after-free when a lost connection's connect()
// met one in progress (AggregatorBrokerList.MovesToTheNextBrokerWhenOneIsDown).
void MqttIngest::Impl::connect() {
  DeliveryGate::OutsideCall call(gate);  // a reconnect with the gate closed would wait for it: try again soon
  if (!call.ok()) {
    retry.expires_after(kGateRetry);
    retry.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec) self->connect();
    });
    return;
  }
  if (stopped || client().is_connected() || connecting.exchange(true)) return;
  try {
    client().connect(options(), nullptr, *this);
  } catch (const mqtt::exception& e) {
    connecting = false;
    log->warn("mqtt connect to {} failed: {}", uri, e.what());
    schedule_retry();
  }
}

// iaction_listener for connect() (with one URI, paho's automatic reconnect covers later losses).
void MqttIngest::Impl::on_failure(const mqtt::token& tok) {
  if (tok.get_client() != current.load()) return;  // a replaced client's connect (rebuild)
  connecting = false;
  if (stopped) return;  // a connect that was in progress at stop()
  int rc = tok.get_return_code();
  // CONNACK 4/5: the broker refused our user name or password, or we are not authorised.
  if (rc == 4 || rc == 5)
    log->error(
        "broker {} refused the login{} (CONNACK {}): check --broker-username and --broker-password-file; "
        "retrying",
        uri, login.username.empty() ? " (no --broker-username given)" : " as '" + login.username + "'", rc);
  else
    log->warn("cannot reach broker {} (rc {}); retrying", uri, rc);
  asio::post(io, [self = shared_from_this()] { self->schedule_retry(); });
}

void MqttIngest::Impl::on_success(const mqtt::token& tok) {
  if (tok.get_client() != current.load()) return;
  connecting = false;
  session_present = tok.get_connect_response().is_session_present() ? 1 : 0;
}

void MqttIngest::Impl::schedule_retry() {
  if (stopped) return;
  retry.expires_after(backoff);
  backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
  retry.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (!ec) self->connect();
  });
}

void MqttIngest::Impl::on_connected() {
  connected_at_ms = now_utc_ms();
  connected_steady_ms = steady_ms();
  subscribed = false;
  subscribe_listener.impl = this;
  backoff = std::chrono::milliseconds(250);
  std::vector<std::string> wanted;
  {
    std::lock_guard lk(filters_mu);
    wanted = filters;
  }
  log->info("connected to {} {}; subscribing to {} filter(s)", uris.size() > 1 ? "one of the brokers" : "broker", uri,
            wanted.size());
  try {
    std::vector<int> qos(wanted.size(), 1);
    client().subscribe(mqtt::string_collection::create(wanted), qos, nullptr, subscribe_listener);
  } catch (const mqtt::exception& e) {
    log->error("subscribe failed: {}", e.what());
  }
}

mqtt::async_client* MqttIngest::Impl::make_client() const {
  return new mqtt::async_client(uris.front(), client_id,  // split_broker_uris never returns an empty list
                                mqtt::create_options_builder().max_buffered_messages(kMaxBuffered).finalize());
}

std::int64_t MqttIngest::Impl::steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The current client's callbacks. Each carries the generation it was made for, so a client
// that rebuild() replaced cannot act on the one that took over.
void MqttIngest::Impl::install_handlers() {
  std::weak_ptr<Impl> weak = shared_from_this();
  const std::uint64_t gen = generation.load();
  auto live = [weak, gen]() -> std::shared_ptr<Impl> {
    auto self = weak.lock();
    return self && !self->stopped && self->generation.load() == gen ? self : nullptr;
  };
  client().set_connected_handler([live](const std::string&) {
    if (auto self = live()) self->on_connected();
  });
  client().set_connection_lost_handler([live](const std::string& cause) {
    if (auto self = live()) self->on_connection_lost(cause);
  });
  // Hand each message to the io_context; the shared message pointer avoids copying the payload twice.
  client().set_message_callback([live](mqtt::const_message_ptr msg) {
    auto self = live();
    if (!self) return;
    self->gate.admit();
    // Paho's one thread also reads every message: it verifies (and unpacks) only while the io
    // thread is behind, and leaves the work to the io thread when that keeps up
    // (docs/performance.md, "Signatures").
    Prechecked pre;
    if (self->precheck && self->gate.queued() >= kPrecheckFromQueued)
      pre = self->precheck(msg->get_topic(), msg->get_payload_str());
    self->gate.queued_one();
    asio::post(self->io, [self, msg = std::move(msg), pre = std::move(pre)] {
      if (!self->stopped) self->handler(msg->get_topic(), msg->get_payload_str(), pre);
      self->gate.handled();
    });
  });
}

void MqttIngest::Impl::on_connection_lost(const std::string& cause) {
  subscribed = false;
  session_present = 1;  // Paho reconnects on its own; assume the broker kept our queue
  log->warn("connection to broker lost: {}", cause.empty() ? "(no cause)" : cause);
  const bool quick = steady_ms() - connected_steady_ms.load() < kQuickLoss.count();
  int in_a_row = 0;
  if (quick)
    in_a_row = quick_losses.fetch_add(1) + 1;
  else
    quick_losses = 0;
  if (in_a_row >= kQuickLossesBeforeRebuild) {
    quick_losses = 0;
    asio::post(io, [self = shared_from_this()] { self->rebuild(); });
  } else if (uris.size() > 1) {
    // Not at once: Paho is still closing the lost session (see connect()).
    asio::post(io, [self = shared_from_this()] { self->schedule_retry(); });
  }
}

// A connection the broker closes right after every connect, over and over, is what a
// corrupt in-flight message looks like: paho.mqtt.c (1.3.12, and upstream as of 1.3.14)
// keeps a QoS 1 publish whose first write failed (the broker went away under it) in the
// session it resends on reconnect, with buffers the failed command has already freed.
// Mosquitto then reads garbage ("disconnected due to malformed packet") after each CONNACK
// and the aggregator never got back (seen in AgentDelivery.DropsMidStream..., strace showing
// the resent topic as freed bytes). Only a fresh client forgets it. The broker keeps our
// session and its queue (same client id, clean_session false); MqttOutbox sends again what
// the old client never had acknowledged.
void MqttIngest::Impl::rebuild() {
  if (stopped) return;
  DeliveryGate::OutsideCall call(gate);
  if (!call.ok()) {
    auto timer = std::make_shared<asio::steady_timer>(io, kGateRetry);
    timer->async_wait([self = shared_from_this(), timer](boost::system::error_code ec) {
      if (!ec) self->rebuild();
    });
    return;
  }
  const auto now = steady_ms();
  if (rebuilds >= kMaxRebuilds || (last_rebuild_ms != 0 && now - last_rebuild_ms < kRebuildSpacing.count())) {
    if (uris.size() > 1) schedule_retry();
    return;
  }
  rebuilds += 1;
  last_rebuild_ms = now;
  log->warn(
      "the broker closed the connection within {} ms of {} connects in a row: starting a fresh MQTT client "
      "(Paho may hold a corrupt message to resend; docs/reliability.md, \"A connection closed after every "
      "connect\"); the broker keeps our session",
      kQuickLoss.count(), kQuickLossesBeforeRebuild);
  generation += 1;
  auto& old = *owned;
  try {
    old.disable_callbacks();
  } catch (const mqtt::exception&) {  // a connect in progress: its callbacks see the old generation
  }
  try {
    old.disconnect(0);                // also ends its automatic reconnect
  } catch (const mqtt::exception&) {  // not connected: Paho still stops reconnecting
  }
  // Never destroyed: destroying it would free the corrupt message's buffers a second time.
  retire(std::move(owned));
  owned.reset(make_client());
  current = owned.get();
  install_handlers();
  connecting = false;
  backoff = std::chrono::milliseconds(250);
  connect();
  // The old client never reports on what it held: the outbox sends those again now, not
  // after its stuck_after.
  auto lost = std::move(in_flight);
  in_flight.clear();
  if (on_published)
    for (auto id : lost) on_published(id, false);
}

void MqttIngest::Impl::retire(std::unique_ptr<mqtt::async_client> c) {
  static std::mutex mu;
  static auto* kept = new std::vector<std::unique_ptr<mqtt::async_client>>;  // reachable, never freed
  std::lock_guard lk(mu);
  kept->push_back(std::move(c));
}

}  // namespace postwatch::aggregator
