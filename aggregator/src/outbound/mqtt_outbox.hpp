// The aggregator's one way out to MQTT: confirmations, resend requests, alarms, goal and
// pillar snapshots, cluster records all go through here (docs/aggregator.md, "What the
// aggregator publishes"). It hands messages to the client only as fast as the broker
// acknowledges them: at most `window` in flight, the next one when one completes, so Paho's
// own queue never overflows (its -12, "No more messages can be buffered"). What waits is an
// OutboundQueue: by priority, retained state coalesced per topic.
//
// Runs on the io_context; the client's outcomes are posted back to it.
#pragma once

#include "outbound/outbound_queue.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

namespace spdlog {
class logger;
}

namespace postwatch::aggregator {

// What the outbox needs of an MQTT client (MqttIngest provides it; tests provide their own).
struct OutboxClient {
  // Hands one QoS 1 message over; the client reports the outcome with the same id through
  // MqttOutbox::on_published. False when refused at once (not connected).
  std::function<bool(std::uint64_t id, const OutboundMessage& m)> publish;
  std::function<bool()> connected;
  // Shutdown only: publish and wait for the broker's acknowledgement.
  std::function<bool(const OutboundMessage& m, std::chrono::milliseconds timeout)> publish_and_wait;
};

struct OutboxOptions {
  OutboundLimits limits;
  // A message the client neither acknowledged nor failed within this is counted failed and
  // sent again (retained: only if still the newest value), so a lost token cannot shrink the
  // window for good.
  std::chrono::milliseconds stuck_after{30'000};
  // While disconnected, or after a refusal, how often to try again.
  std::chrono::milliseconds retry_every{250};
};

class MqttOutbox {
 public:
  MqttOutbox(boost::asio::io_context& io, OutboxClient client, std::shared_ptr<spdlog::logger> log,
             OutboxOptions options = {});

  // Queues a message and sends what the window allows. Never fails: see OutboundQueue.
  void publish(OutboundMessage m);
  void publish(std::string topic, std::string payload, bool retained, OutboundPriority priority) {
    publish(OutboundMessage{std::move(topic), std::move(payload), retained, priority});
  }
  // The client's outcome for a message (on the io_context).
  void on_published(std::uint64_t id, bool ok);
  // Starts the retry timer.
  void start();
  // Sends what still waits, highest priority first, one at a time until `budget` is spent; what
  // is left is counted dropped (shutdown) and logged. Then stops the timer.
  void stop(std::chrono::milliseconds budget);

  const OutboundQueue& queue() const { return queue_; }
  std::uint64_t stuck() const { return stuck_; }

 private:
  void pump();
  void on_timer();
  void arm_timer();

  boost::asio::io_context& io_;
  OutboxClient client_;
  std::shared_ptr<spdlog::logger> log_;
  OutboxOptions options_;
  OutboundQueue queue_;
  boost::asio::steady_timer timer_;
  std::unordered_map<std::uint64_t, std::chrono::steady_clock::time_point> sent_at_;
  std::uint64_t stuck_ = 0;
  bool stopped_ = false;
  bool pumping_ = false;
};

}  // namespace postwatch::aggregator
