// MqttIngest::Impl, what is behind MqttIngest (mqtt_ingest.hpp): the Paho client, its
// callbacks and the state they share with the io_context. mqtt_ingest.cpp holds MqttIngest's
// member functions and the filters' changes; mqtt_ingest_connection.cpp connects, reconnects
// and rebuilds the client. Paho stays behind these three files.
#pragma once

#include "ingest/mqtt_ingest.hpp"

#include <mqtt/async_client.h>
#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

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

  // The connection (mqtt_ingest_connection.cpp): connecting and retrying, the client's
  // callbacks, and a fresh client when the broker closes every connection at once.
  mqtt::connect_options options() const;
  void connect();
  void on_failure(const mqtt::token& tok) override;  // iaction_listener for connect()
  void on_success(const mqtt::token& tok) override;
  void schedule_retry();
  void on_connected();
  mqtt::async_client* make_client() const;
  static std::int64_t steady_ms();
  void install_handlers();
  void on_connection_lost(const std::string& cause);
  void rebuild();
  static void retire(std::unique_ptr<mqtt::async_client> c);

  // The Paho half of change_filters() (mqtt_ingest.cpp).
  void resubscribe(std::vector<std::string> add, std::vector<std::string> remove, std::function<void(bool)> granted);
};

}  // namespace postwatch::aggregator
