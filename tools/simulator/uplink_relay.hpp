// Each simulated agent's uplink, as a TCP relay on loopback between the agent and
// the broker, so the simulator can cut one post off (a post going silent) or every
// post (a broker outage it may not stop itself) without touching the agent code.
// A cut closes the link's connections without an MQTT DISCONNECT, so the broker
// publishes the agent's last will as it would when a post's router dies, and the
// link refuses connections until it is restored; the agent meanwhile spools and
// reconnects with its usual backoff.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

namespace spdlog {
class logger;
}

namespace postwatch::sim {

class UplinkRelay {
 public:
  // One listening port per link on 127.0.0.1; every connection to it is forwarded to
  // `broker_uri` (tcp:// or mqtt://: the relay carries plain TCP). Throws
  // std::invalid_argument for another scheme or a host that does not resolve.
  UplinkRelay(const std::string& broker_uri, std::size_t links, std::shared_ptr<spdlog::logger> log);
  ~UplinkRelay();
  UplinkRelay(const UplinkRelay&) = delete;
  UplinkRelay& operator=(const UplinkRelay&) = delete;

  // The URI an agent connects to for `link`.
  std::string uri(std::size_t link) const;
  // Closes the link's connections and stops listening until restore(). Counted, so
  // a post silenced during an outage stays cut until both have ended. Thread-safe.
  void cut(std::size_t link);
  void restore(std::size_t link);
  // Stops listening, leaving the link's connections alone, until resume_accepting():
  // while the real broker is stopped and started again, its agents are refused at once
  // instead of reaching a broker that is going down or not up yet. Counted with cuts.
  void stop_accepting(std::size_t link);
  void resume_accepting(std::size_t link) { restore(link); }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace postwatch::sim
