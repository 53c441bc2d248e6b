// A loopback TCP proxy in front of a broker that reads MQTT's framing, counts the clients'
// bytes, and can misbehave on purpose: drop the client's publishes (so they stay in flight, unacknowledged and never
// delivered), refuse a client's resent publish (DUP set) by closing the connection, and cut
// every connection.
// Together they make the one fault Paho never recovers from by itself (mqtt_ingest_connection.cpp,
// rebuild()): a message in flight that the broker refuses each time it is sent again.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

namespace postwatch::test {

class MqttFaultProxy {
 public:
  explicit MqttFaultProxy(unsigned short broker_port);
  ~MqttFaultProxy();
  MqttFaultProxy(const MqttFaultProxy&) = delete;
  MqttFaultProxy& operator=(const MqttFaultProxy&) = delete;

  std::string uri() const { return "tcp://127.0.0.1:" + std::to_string(port_); }
  void drop_publishes(bool on) { drop_publishes_ = on; }
  void refuse_resends(bool on) { refuse_resends_ = on; }
  void cut();  // closes every connection open now

  std::uint64_t connections() const { return connections_; }
  std::uint64_t publishes_dropped() const { return publishes_dropped_; }
  std::uint64_t resends_refused() const { return resends_refused_; }
  // Every byte the clients sent through it: what an uplink cap is measured against.
  std::uint64_t bytes_from_clients() const { return bytes_from_clients_; }

 private:
  struct Pair {
    int client = -1, broker = -1;
    std::string from_client, from_broker;  // bytes short of a whole packet
  };
  void run();
  bool pass(Pair& p, bool from_client);  // false: close the pair

  unsigned short port_ = 0;
  unsigned short broker_port_;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};
  std::vector<Pair> pairs_;  // the proxy's thread only
  std::atomic<bool> stop_{false}, cut_{false}, drop_publishes_{false}, refuse_resends_{false};
  std::atomic<std::uint64_t> connections_{0}, publishes_dropped_{0}, resends_refused_{0}, bytes_from_clients_{0};
  std::thread thread_;
};

}  // namespace postwatch::test
