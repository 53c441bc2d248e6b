#include "ingest/mqtt_ingest.hpp"

#include <mqtt/async_client.h>
#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>

namespace postwatch::aggregator {
namespace asio = boost::asio;

struct MqttIngest::Impl : std::enable_shared_from_this<MqttIngest::Impl>, mqtt::iaction_listener {
  Impl(asio::io_context& io_, std::string uri_, std::string id, std::vector<std::string> f,
       std::shared_ptr<spdlog::logger> l, Handler h)
      : io(io_),
        uri(std::move(uri_)),
        client_id(std::move(id)),
        filters(std::move(f)),
        log(std::move(l)),
        handler(std::move(h)),
        client(uri, client_id),
        retry(io_) {}

  asio::io_context& io;
  std::string uri, client_id;
  std::vector<std::string> filters;
  std::shared_ptr<spdlog::logger> log;
  Handler handler;
  mqtt::async_client client;
  asio::steady_timer retry;
  std::atomic<bool> stopped{false};
  std::atomic<bool> subscribed{false};
  std::chrono::milliseconds backoff{250};

  mqtt::connect_options options() const {
    return mqtt::connect_options_builder()
        .clean_session(false)  // the broker keeps our QoS 1 messages while we restart
        .keep_alive_interval(std::chrono::seconds(20))
        .automatic_reconnect(std::chrono::milliseconds(250), std::chrono::seconds(10))
        .max_inflight(1024)
        .finalize();
  }

  void connect() {
    if (stopped) return;
    try {
      client.connect(options(), nullptr, *this);
    } catch (const mqtt::exception& e) {
      log->warn("mqtt connect to {} failed: {}", uri, e.what());
      schedule_retry();
    }
  }

  // iaction_listener for the initial connect (paho's automatic reconnect covers later losses).
  void on_failure(const mqtt::token& tok) override {
    log->warn("cannot reach broker {} (rc {}); retrying", uri, tok.get_return_code());
    asio::post(io, [self = shared_from_this()] { self->schedule_retry(); });
  }
  void on_success(const mqtt::token&) override {}

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
    }
    void on_failure(const mqtt::token& tok) override {
      impl->log->error("broker refused the subscription (rc {})", tok.get_return_code());
    }
  } subscribe_listener;

  void on_connected() {
    subscribed = false;
    subscribe_listener.impl = this;
    backoff = std::chrono::milliseconds(250);
    log->info("connected to broker {}; subscribing to {} filter(s)", uri, filters.size());
    try {
      std::vector<int> qos(filters.size(), 1);
      client.subscribe(mqtt::string_collection::create(filters), qos, nullptr, subscribe_listener);
    } catch (const mqtt::exception& e) {
      log->error("subscribe failed: {}", e.what());
    }
  }
};

MqttIngest::MqttIngest(asio::io_context& io, std::string broker_uri, std::string client_id,
                       std::vector<std::string> filters, std::shared_ptr<spdlog::logger> log, Handler on_message)
    : impl_(std::make_shared<Impl>(io, std::move(broker_uri), std::move(client_id), std::move(filters), std::move(log),
                                   std::move(on_message))) {}

MqttIngest::~MqttIngest() { stop(); }

void MqttIngest::start() {
  std::weak_ptr<Impl> weak = impl_;
  impl_->client.set_connected_handler([weak](const std::string&) {
    if (auto self = weak.lock()) self->on_connected();
  });
  impl_->client.set_connection_lost_handler([weak](const std::string& cause) {
    if (auto self = weak.lock()) {
      self->subscribed = false;
      self->log->warn("connection to broker lost: {}", cause.empty() ? "(no cause)" : cause);
    }
  });
  // Hand each message to the io_context; the shared message pointer avoids copying the payload twice.
  impl_->client.set_message_callback([weak](mqtt::const_message_ptr msg) {
    auto self = weak.lock();
    if (!self || self->stopped) return;
    asio::post(self->io, [self, msg = std::move(msg)] {
      if (!self->stopped) self->handler(msg->get_topic(), msg->get_payload_str());
    });
  });
  impl_->connect();
}

void MqttIngest::stop() {
  if (impl_->stopped.exchange(true)) return;
  impl_->retry.cancel();
  try {
    if (impl_->client.is_connected()) impl_->client.disconnect(std::chrono::milliseconds(500))->wait();
  } catch (const mqtt::exception&) {
  }
  impl_->client.disable_callbacks();
}

bool MqttIngest::connected() const { return impl_->client.is_connected(); }
bool MqttIngest::subscribed() const { return impl_->subscribed; }

bool MqttIngest::publish(const std::string& topic, const std::string& payload, int qos, bool retained) {
  if (!impl_->client.is_connected()) return false;
  try {
    impl_->client.publish(topic, payload.data(), payload.size(), qos, retained);
    return true;
  } catch (const mqtt::exception& e) {
    impl_->log->warn("publish to {} failed: {}", topic, e.what());
    return false;
  }
}

}  // namespace postwatch::aggregator
