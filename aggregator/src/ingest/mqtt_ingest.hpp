// Subscribes to the agents' topics and hands every message to the io_context:
// paho calls back on its own threads, the state is only touched on the io_context.
#pragma once

#include <boost/asio/io_context.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace spdlog {
class logger;
}

namespace postwatch::aggregator {

struct MqttMessage {
  std::string topic;
  std::string payload;
};

class MqttIngest {
 public:
  using Handler = std::function<void(const std::string& topic, const std::string& payload)>;

  MqttIngest(boost::asio::io_context& io, std::string broker_uri, std::string client_id,
             std::vector<std::string> filters, std::shared_ptr<spdlog::logger> log, Handler on_message);
  ~MqttIngest();

  // Connects in the background, retrying until stop(); subscribes on every (re)connect.
  void start();
  void stop();
  bool connected() const;
  // Connected and subscribed to every filter: messages published from now on reach us.
  bool subscribed() const;
  // Publishes (e.g. goal snapshots); false when not connected.
  bool publish(const std::string& topic, const std::string& payload, int qos, bool retained);

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace postwatch::aggregator
