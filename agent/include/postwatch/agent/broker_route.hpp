// How the agent reaches its broker (docs/agent.md, "Through a proxy"): the broker's host and
// port, and the HTTP proxy in between, if any. Used for the connect options, for the uplink
// probe, and to say which hop failed when a connect does (Paho says only "TCP/TLS connect
// failure").
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace postwatch::agent {

struct HostPort {
  std::string host;
  std::uint16_t port = 0;
  std::string text() const;  // host:port ([v6]:port)
};
// ssl://, mqtts:// or wss://: a broker reached over TLS.
bool is_tls_broker_uri(const std::string& uri);
// tcp://, mqtt:// or ws://: a broker reached in plaintext.
bool is_plaintext_broker_uri(const std::string& uri);

// tcp://host:port, ssl://[v6]:port, mqtts://host, ws://host:port/mqtt, wss://host (default ports
// 1883, 8883, 80, 443); nullopt if unparsable.
std::optional<HostPort> broker_host_port(const std::string& broker_uri);

// uplink.proxy: "http://host:port" (port defaults to 8080). Empty error when it parses.
std::optional<HostPort> parse_proxy_url(const std::string& url, std::string& error);

// The proxy a connect to `broker_uri` goes through: `configured` (uplink.proxy) when set, else
// the one Paho takes from the environment by itself (http_proxy for tcp:// and ws://,
// https_proxy for ssl:// and wss://). `origin` says which, for logs and errors.
struct BrokerProxy {
  HostPort at;
  std::string origin;
};
std::optional<BrokerProxy> effective_proxy(const std::string& broker_uri, const std::string& configured);

// A TCP connection to `to` within `timeout`: the socket, or -1 with `error` set.
int connect_tcp(const HostPort& to, std::chrono::milliseconds timeout, std::string& error);

// Asks `proxy` for a tunnel to `broker` as Paho does (HTTP CONNECT) and closes it: empty when
// the proxy answers 200, else which hop failed and why.
std::string try_proxy_tunnel(const HostPort& proxy, const HostPort& broker, std::chrono::milliseconds timeout);

}  // namespace postwatch::agent
