#include "postwatch/agent/broker_route.hpp"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace postwatch::agent {

namespace {

// "host:port" or "[v6]:port" after the scheme, up to the path.
std::optional<HostPort> parse_authority(std::string rest, std::uint16_t default_port) {
  if (auto slash = rest.find('/'); slash != std::string::npos) rest.resize(slash);
  HostPort hp;
  hp.port = default_port;
  std::string port;
  if (!rest.empty() && rest[0] == '[') {
    auto close = rest.find(']');
    if (close == std::string::npos) return std::nullopt;
    hp.host = rest.substr(1, close - 1);
    if (close + 1 < rest.size() && rest[close + 1] == ':') port = rest.substr(close + 2);
  } else {
    auto colon = rest.rfind(':');
    hp.host = rest.substr(0, colon);
    if (colon != std::string::npos) port = rest.substr(colon + 1);
  }
  if (!port.empty()) {
    char* end = nullptr;
    long p = std::strtol(port.c_str(), &end, 10);
    if (*end || p < 1 || p > 65535) return std::nullopt;
    hp.port = static_cast<std::uint16_t>(p);
  }
  if (hp.host.empty()) return std::nullopt;
  return hp;
}

}  // namespace

bool is_tls_broker_uri(const std::string& uri) {
  return uri.starts_with("ssl://") || uri.starts_with("mqtts://") || uri.starts_with("wss://");
}

bool is_plaintext_broker_uri(const std::string& uri) {
  return uri.starts_with("tcp://") || uri.starts_with("mqtt://") || uri.starts_with("ws://");
}

std::string HostPort::text() const {
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::optional<HostPort> broker_host_port(const std::string& uri) {
  auto scheme_end = uri.find("://");
  if (scheme_end == std::string::npos) return std::nullopt;
  const std::string scheme = uri.substr(0, scheme_end);
  std::uint16_t port = 1883;
  if (scheme == "ssl" || scheme == "mqtts") port = 8883;
  if (scheme == "ws") port = 80;
  if (scheme == "wss") port = 443;
  return parse_authority(uri.substr(scheme_end + 3), port);
}

std::optional<HostPort> parse_proxy_url(const std::string& url, std::string& error) {
  error.clear();
  if (!url.starts_with("http://")) {
    error =
        "must be http://host:port (the agent asks the proxy for a tunnel with HTTP CONNECT; a TLS broker_uri "
        "stays TLS end to end through it)";
    return std::nullopt;
  }
  const std::string rest = url.substr(7);
  if (rest.find('@') != std::string::npos) {
    error = "must not hold credentials (user@host): proxy authentication is not supported";
    return std::nullopt;
  }
  auto hp = parse_authority(rest, 8080);
  if (!hp) error = "is not http://host:port";
  return hp;
}

std::optional<BrokerProxy> effective_proxy(const std::string& broker_uri, const std::string& configured) {
  std::string error;
  if (!configured.empty()) {
    if (auto hp = parse_proxy_url(configured, error)) return BrokerProxy{*hp, "uplink.proxy"};
    return std::nullopt;  // the config check refuses it before this is ever asked
  }
  // Paho C 1.3.12 reads these itself when no proxy is set (MQTTProtocol_connect), with or
  // without the http:// prefix.
  const char* name = is_tls_broker_uri(broker_uri) ? "https_proxy" : "http_proxy";
  const char* env = std::getenv(name);
  if (!env || !*env) return std::nullopt;
  std::string value = env;
  if (value.starts_with("http://")) value = value.substr(7);
  if (value.starts_with("https://")) value = value.substr(8);
  if (value.find('@') != std::string::npos) value = value.substr(value.rfind('@') + 1);
  if (auto hp = parse_authority(value, 8080)) return BrokerProxy{*hp, std::string("the environment's ") + name};
  return std::nullopt;
}

int connect_tcp(const HostPort& to, std::chrono::milliseconds timeout, std::string& error) {
  const auto start = std::chrono::steady_clock::now();
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (int rc = ::getaddrinfo(to.host.c_str(), std::to_string(to.port).c_str(), &hints, &res); rc != 0) {
    error = "cannot resolve " + to.host + ": " + ::gai_strerror(rc);
    return -1;
  }
  error = "no address for " + to.host;
  int connected = -1;
  for (addrinfo* a = res; a && connected < 0; a = a->ai_next) {
    int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    int rc = ::connect(fd, a->ai_addr, a->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      auto left =
          timeout - std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
      pollfd p{fd, POLLOUT, 0};
      if (left.count() > 0 && ::poll(&p, 1, static_cast<int>(left.count())) == 1) {
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        rc = err == 0 ? 0 : -1;
        errno = err;
      } else {
        rc = -1;
        errno = ETIMEDOUT;
      }
    }
    if (rc == 0) {
      connected = fd;
      error.clear();
    } else {
      error = "cannot connect to " + to.text() + ": " + std::strerror(errno);
      ::close(fd);
    }
  }
  ::freeaddrinfo(res);
  return connected;
}

std::string try_proxy_tunnel(const HostPort& proxy, const HostPort& broker, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string error;
  int fd = connect_tcp(proxy, timeout, error);
  if (fd < 0) return "the proxy " + proxy.text() + " is not reachable: " + error;
  const std::string request = "CONNECT " + broker.text() + " HTTP/1.1\r\nHost: " + broker.text() + "\r\n\r\n";
  std::string answer;
  bool sent = ::send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size());
  while (sent && answer.find("\r\n") == std::string::npos && answer.size() < 512) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd p{fd, POLLIN, 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) != 1) break;
    char buf[256];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    answer.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  const std::string status = answer.substr(0, answer.find("\r\n"));
  if (status.starts_with("HTTP/1.1 200") || status.starts_with("HTTP/1.0 200")) return "";
  if (status.empty())
    return "the proxy " + proxy.text() + " gave no answer to CONNECT " + broker.text() + " within " +
           std::to_string(timeout.count()) + " ms (is it an HTTP proxy?)";
  return "the proxy " + proxy.text() + " refused a tunnel to " + broker.text() + ": \"" + status +
         "\"; hint: its rules must allow CONNECT to the broker's port";
}

}  // namespace postwatch::agent
