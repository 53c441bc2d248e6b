// A loopback HTTP proxy that serves CONNECT only, as a site's outbound proxy does for MQTT over
// TLS or WebSockets: it opens a tunnel to the requested host:port and relays bytes both ways.
// It records each tunnel's target and refuses (403) ports it is not told to allow.
#pragma once

#include <atomic>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace postwatch::test {

class HttpConnectProxy {
 public:
  // `allowed_ports` empty: every port.
  explicit HttpConnectProxy(std::set<unsigned short> allowed_ports = {});
  ~HttpConnectProxy();
  HttpConnectProxy(const HttpConnectProxy&) = delete;
  HttpConnectProxy& operator=(const HttpConnectProxy&) = delete;

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  unsigned short port() const { return port_; }
  std::vector<std::string> tunnels() const;  // "host:port" of every tunnel opened
  std::uint64_t refused() const { return refused_; }

 private:
  struct Pair {
    int client = -1, upstream = -1;
    std::string header;  // the client's request, until the tunnel is open
  };
  void run();
  bool open_tunnel(Pair& p);  // false: close the pair

  std::set<unsigned short> allowed_;
  unsigned short port_ = 0;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};
  std::vector<Pair> pairs_;  // the proxy's thread only
  mutable std::mutex mu_;
  std::vector<std::string> tunnels_;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> refused_{0};
  std::thread thread_;
};

}  // namespace postwatch::test
