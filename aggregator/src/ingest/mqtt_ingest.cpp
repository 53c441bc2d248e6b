#include "ingest/mqtt_ingest.hpp"

#include "postwatch/clock.hpp"
#include "postwatch/mqtt_options.hpp"

#include <mqtt/async_client.h>
#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <optional>
#include <unordered_set>

namespace postwatch::aggregator {
namespace asio = boost::asio;

struct MqttIngest::Impl : std::enable_shared_from_this<MqttIngest::Impl>, mqtt::iaction_listener {
  Impl(asio::io_context& io_, std::string uri_, std::string id, std::vector<std::string> f,
       std::shared_ptr<spdlog::logger> l, Handler h, IngestFlowControl fc)
      : gate(std::move(fc), l),
        io(io_),
        uri(std::move(uri_)),
        uris(split_broker_uris(uri)),
        client_id(std::move(id)),
        filters(std::move(f)),
        log(std::move(l)),
        handler(std::move(h)),
        owned(make_client()),
        current(owned.get()),
        retry(io_) {}

  DeliveryGate gate;  // between Paho's delivery thread and the io_context

  asio::io_context& io;
  std::string uri;  // as given, for log lines
  std::vector<std::string> uris;
  std::string client_id;
  std::mutex filters_mu;  // the io_context changes them, paho's thread resubscribes them
  std::vector<std::string> filters;
  std::optional<mqtt::message> will;
  BrokerLogin login;
  std::function<void()> on_subscribed;
  MqttIngest::Precheck precheck;  // set before start(), then read by Paho's thread only

  // A subscribe whose answer someone waits for; kept until stop() since paho holds a
  // pointer to the listener while the token is pending.
  struct GrantListener : mqtt::iaction_listener {
    std::weak_ptr<Impl> impl;
    std::function<void(bool)> done;
    void finish(bool ok) {
      if (auto self = impl.lock()) asio::post(self->io, [f = std::move(done), ok] { f(ok); });
    }
    void on_success(const mqtt::token&) override { finish(true); }
    void on_failure(const mqtt::token&) override { finish(false); }
  };
  std::vector<std::unique_ptr<GrantListener>> grants;  // io_context only

  // Outcomes of publish_tracked(): the ticket id rides in the token's user context.
  struct PublishListener : mqtt::iaction_listener {
    Impl* impl = nullptr;
    void finish(const mqtt::token& tok, bool ok) {
      auto id = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(tok.get_user_context()));
      if (impl->stopped || !impl->on_published) return;
      asio::post(impl->io, [self = impl->shared_from_this(), id, ok] {
        // Absent: rebuild() has already reported it failed, with the client it was given to.
        if (self->in_flight.erase(id) != 0 && self->on_published) self->on_published(id, ok);
      });
    }
    void on_success(const mqtt::token& tok) override { finish(tok, true); }
    void on_failure(const mqtt::token& tok) override { finish(tok, false); }
  } publish_listener;
  std::function<void(std::uint64_t, bool)> on_published;
  std::unordered_set<std::uint64_t> in_flight;  // publish_tracked ids without an outcome (io thread)
  std::shared_ptr<spdlog::logger> log;
  Handler handler;
  // The Paho client in use. rebuild() swaps it on the io thread; Paho's threads read `current`.
  std::unique_ptr<mqtt::async_client> owned;
  std::atomic<mqtt::async_client*> current;
  mqtt::async_client& client() const { return *current.load(); }
  std::atomic<std::uint64_t> generation{0};  // callbacks of a replaced client carry an older one
  asio::steady_timer retry;
  std::atomic<bool> stopped{false};
  std::atomic<bool> connecting{false};  // our connect() is in progress (Paho's thread ends it)
  std::atomic<bool> subscribed{false};
  // For may_be_backlog(): the broker's CONNACK says whether it kept our session (and so
  // perhaps queued messages for us); only the first connect's token tells, so a reconnect
  // counts as "kept".
  std::atomic<int> session_present{1};
  std::atomic<std::int64_t> connected_at_ms{0};
  std::atomic<std::int64_t> connected_steady_ms{0};
  std::atomic<int> quick_losses{0};  // connections lost within kQuickLoss of connecting, in a row
  int rebuilds = 0;                  // io thread only, as the one below
  std::int64_t last_rebuild_ms = 0;
  std::chrono::milliseconds backoff{250};

  mqtt::connect_options options() const {
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
      set_mqtt_tls(b, {.ca_file = login.ca_file,
                       .cert_file = login.cert_file,
                       .key_file = login.key_file,
                       .verify_hostname = true});
    return b.finalize();
  }

  // One connect at a time. A connect() while Paho still has one in progress is refused
  // (MQTTASYNC_COMMAND_IGNORED, -18) yet Paho may still call back for it, with the token the
  // refused call has freed: ASan saw that use-after-free when a lost connection's connect()
  // met one in progress (AggregatorBrokerList.MovesToTheNextBrokerWhenOneIsDown).
  void connect() {
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

  // The Paho half of change_filters(), on the io thread. With the delivery gate closed it
  // would wait for the gate, which waits for this thread (DeliveryGate::OutsideCall): it tries again shortly.
  void resubscribe(std::vector<std::string> add, std::vector<std::string> remove, std::function<void(bool)> granted) {
    DeliveryGate::OutsideCall call(gate);
    if (!call.ok()) {
      auto timer = std::make_shared<asio::steady_timer>(io, kGateRetry);
      timer->async_wait([self = shared_from_this(), timer, add = std::move(add), remove = std::move(remove),
                         granted = std::move(granted)](boost::system::error_code ec) mutable {
        if (!ec && !self->stopped) self->resubscribe(std::move(add), std::move(remove), std::move(granted));
      });
      return;
    }
    try {
      if (!remove.empty() && client().is_connected()) client().unsubscribe(mqtt::string_collection::create(remove));
    } catch (const mqtt::exception& e) {
      log->warn("unsubscribe failed: {}", e.what());
    }
    if (add.empty()) {
      asio::post(io, [g = std::move(granted)] { g(true); });
      return;
    }
    // Not connected: the next connect subscribes the whole set and on_subscribed follows.
    if (!client().is_connected()) return;
    auto& listener = grants.emplace_back(std::make_unique<GrantListener>());
    listener->impl = shared_from_this();
    listener->done = std::move(granted);
    try {
      std::vector<int> qos(add.size(), 1);
      client().subscribe(mqtt::string_collection::create(add), qos, nullptr, *listener);
    } catch (const mqtt::exception& e) {
      log->warn("subscribe failed: {}", e.what());
      listener->finish(false);
    }
  }

  // iaction_listener for connect() (with one URI, paho's automatic reconnect covers later losses).
  void on_failure(const mqtt::token& tok) override {
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
  void on_success(const mqtt::token& tok) override {
    if (tok.get_client() != current.load()) return;
    connecting = false;
    session_present = tok.get_connect_response().is_session_present() ? 1 : 0;
  }

  void schedule_retry() {
    if (stopped) return;
    retry.expires_after(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
    retry.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec) self->connect();
    });
  }

  // Marks readiness once the broker granted the subscriptions.
  struct SubscribeListener : mqtt::iaction_listener {
    Impl* impl = nullptr;
    void on_success(const mqtt::token&) override {
      impl->subscribed = true;
      impl->log->info("subscribed; ready");
      if (impl->on_subscribed)
        asio::post(impl->io, [self = impl->shared_from_this()] {
          if (!self->stopped) self->on_subscribed();
        });
    }
    void on_failure(const mqtt::token& tok) override {
      impl->log->error("broker refused the subscription (rc {})", tok.get_return_code());
    }
  } subscribe_listener;

  void on_connected() {
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

  mqtt::async_client* make_client() const {
    return new mqtt::async_client(uris.front(), client_id,  // split_broker_uris never returns an empty list
                                  mqtt::create_options_builder().max_buffered_messages(kMaxBuffered).finalize());
  }

  static std::int64_t steady_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }

  // The current client's callbacks. Each carries the generation it was made for, so a client
  // that rebuild() replaced cannot act on the one that took over.
  void install_handlers() {
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
      Prechecked pre;
      if (self->precheck) pre = self->precheck(msg->get_topic(), msg->get_payload_str());
      self->gate.queued_one();
      asio::post(self->io, [self, msg = std::move(msg), pre = std::move(pre)] {
        if (!self->stopped) self->handler(msg->get_topic(), msg->get_payload_str(), pre);
        self->gate.handled();
      });
    });
  }

  void on_connection_lost(const std::string& cause) {
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
  void rebuild() {
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

  static void retire(std::unique_ptr<mqtt::async_client> c) {
    static std::mutex mu;
    static auto* kept = new std::vector<std::unique_ptr<mqtt::async_client>>;  // reachable, never freed
    std::lock_guard lk(mu);
    kept->push_back(std::move(c));
  }
};

std::vector<std::string> split_broker_uris(const std::string& list) {
  std::vector<std::string> out;
  std::size_t from = 0;
  while (from <= list.size()) {
    auto comma = list.find(',', from);
    if (comma == std::string::npos) comma = list.size();
    auto item = list.substr(from, comma - from);
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (!item.empty()) out.push_back(std::move(item));
    from = comma + 1;
  }
  if (out.empty()) out.push_back(list);  // Paho names what is wrong with it
  return out;
}

MqttIngest::MqttIngest(asio::io_context& io, std::string broker_uri, std::string client_id,
                       std::vector<std::string> filters, std::shared_ptr<spdlog::logger> log, Handler on_message,
                       IngestFlowControl flow)
    : impl_(std::make_shared<Impl>(io, std::move(broker_uri), std::move(client_id), std::move(filters), std::move(log),
                                   std::move(on_message), std::move(flow))) {}

MqttIngest::~MqttIngest() { stop(); }

void MqttIngest::start() {
  impl_->install_handlers();
  impl_->connect();
}

void MqttIngest::set_login(BrokerLogin login) { impl_->login = std::move(login); }

void MqttIngest::set_will(std::string topic, std::string payload) {
  impl_->will = mqtt::message(std::move(topic), std::move(payload), 1, true);
}

void MqttIngest::set_on_subscribed(std::function<void()> fn) { impl_->on_subscribed = std::move(fn); }

void MqttIngest::set_precheck(Precheck fn) { impl_->precheck = std::move(fn); }

void MqttIngest::change_filters(const std::vector<std::string>& add, const std::vector<std::string>& remove,
                                std::function<void(bool)> granted) {
  {
    std::lock_guard lk(impl_->filters_mu);
    auto& f = impl_->filters;
    for (const auto& r : remove) f.erase(std::remove(f.begin(), f.end(), r), f.end());
    for (const auto& a : add)
      if (std::find(f.begin(), f.end(), a) == f.end()) f.push_back(a);
  }
  impl_->resubscribe(add, remove, std::move(granted));
}

void MqttIngest::stop() {
  if (impl_->stopped.exchange(true)) return;
  impl_->gate.release();  // a paused delivery thread must not hold up the disconnect
  impl_->retry.cancel();
  try {
    if (impl_->client().is_connected()) impl_->client().disconnect(std::chrono::milliseconds(500))->wait();
  } catch (const mqtt::exception&) {
  }
  // Paho refuses to drop its callbacks while a connect is in progress (a broker that took the
  // TCP connection and has not answered): the callbacks then stay, and the ones that can still
  // come see `stopped` and do nothing. Throwing here once aborted the stopping aggregator.
  try {
    impl_->client().disable_callbacks();
  } catch (const mqtt::exception& e) {
    impl_->log->info("mqtt: a connect to {} was in progress at stop ({}); left to end by itself", impl_->uri, e.what());
  }
}

// False while the delivery gate is closed: asking Paho then would wait for the gate (OutsideCall).
bool MqttIngest::connected() const {
  DeliveryGate::OutsideCall call(impl_->gate);
  return call.ok() && impl_->client().is_connected();
}
bool MqttIngest::subscribed() const { return impl_->subscribed; }

bool MqttIngest::may_be_backlog(std::int64_t now_ms) const {
  return impl_->session_present.load() != 0 && now_ms - impl_->connected_at_ms.load() < kBacklogSettleMs;
}

IngestFlowStats MqttIngest::flow() const { return impl_->gate.stats(); }

void MqttIngest::set_on_published(std::function<void(std::uint64_t, bool)> fn) {
  impl_->publish_listener.impl = impl_.get();
  impl_->on_published = std::move(fn);
}

bool MqttIngest::publish_tracked(std::uint64_t id, const std::string& topic, const std::string& payload,
                                 bool retained) {
  DeliveryGate::OutsideCall call(impl_->gate);  // refused while the delivery gate is closed: MqttOutbox tries later
  if (!call.ok() || impl_->stopped || !impl_->client().is_connected()) return false;
  try {
    // Paho builds the message itself: a message_ptr made here and released here would race,
    // as far as ThreadSanitizer can see, with Paho's uninstrumented release of its copy.
    impl_->in_flight.insert(id);
    impl_->client().publish(topic, payload.data(), payload.size(), 1, retained,
                            reinterpret_cast<void*>(static_cast<std::uintptr_t>(id)), impl_->publish_listener);
    return true;
  } catch (const mqtt::exception& e) {
    // Lost the connection between the check and the call: MqttOutbox tries again later.
    impl_->in_flight.erase(id);
    impl_->log->debug("publish to {} refused: {}", topic, e.what());
    return false;
  }
}

bool MqttIngest::publish_and_wait(const std::string& topic, const std::string& payload, bool retained,
                                  std::chrono::milliseconds timeout) {
  DeliveryGate::OutsideCall call(impl_->gate);
  if (!call.ok() || !impl_->client().is_connected()) return false;
  try {
    return impl_->client().publish(topic, payload.data(), payload.size(), 1, retained)->wait_for(timeout);
  } catch (const mqtt::exception& e) {
    impl_->log->warn("publish to {} failed: {}", topic, e.what());
    return false;
  }
}

}  // namespace postwatch::aggregator
