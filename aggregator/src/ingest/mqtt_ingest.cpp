#include "ingest/mqtt_ingest.hpp"

#include "ingest/mqtt_ingest_impl.hpp"

#include <algorithm>

namespace postwatch::aggregator {

// The Paho half of change_filters(), on the io thread. With the delivery gate closed it
// would wait for the gate, which waits for this thread (DeliveryGate::OutsideCall): it tries again shortly.
void MqttIngest::Impl::resubscribe(std::vector<std::string> add, std::vector<std::string> remove,
                                   std::function<void(bool)> granted) {
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
