// The live stream (/api/v1/stream): WebSocket clients get a snapshot when they connect,
// then every message broadcast() as it happens. Each client has a bounded send queue:
// one that falls more than max_queue messages behind is dropped (and logged), so a slow
// client never holds memory or other clients up. Pings keep idle connections alive and
// find dead ones; close_all() ends every session with a close frame (1001, going away).
// Everything runs on the io_context thread.
#pragma once

#include "feed/http_types.hpp"

#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

namespace spdlog {
class logger;
}

namespace postwatch::aggregator {

using PlainStream = boost::beast::tcp_stream;
using TlsStream = boost::beast::ssl_stream<boost::beast::tcp_stream>;

// Takes over a connection whose upgrade request was accepted (see HttpServer).
class WebSocketAcceptor {
 public:
  virtual ~WebSocketAcceptor() = default;
  virtual void accept(PlainStream stream, HttpRequest upgrade) = 0;
  virtual void accept(TlsStream stream, HttpRequest upgrade) = 0;
};

struct LiveStreamOptions {
  std::size_t max_queue = 256;                     // messages a client may be behind before it is dropped
  std::size_t max_clients = 64;                    // further upgrade requests get 503
  std::chrono::milliseconds idle_timeout{30'000};  // ping after half of it; drop after all of it without a word
};

struct LiveStreamStats {
  std::size_t clients = 0;
  std::uint64_t connected_total = 0;
  std::uint64_t dropped_slow_total = 0;
  std::uint64_t messages_total = 0;  // broadcast messages (each sent to every client)
};

class LiveStream final : public WebSocketAcceptor, public std::enable_shared_from_this<LiveStream> {
 public:
  // `snapshot` renders the first message a client gets (called when its handshake completes).
  LiveStream(std::shared_ptr<spdlog::logger> log, LiveStreamOptions options, std::function<std::string()> snapshot);
  ~LiveStream() override;

  void accept(PlainStream stream, HttpRequest upgrade) override;
  void accept(TlsStream stream, HttpRequest upgrade) override;

  // Queues `message` (a text frame) for every connected client.
  void broadcast(std::string message);
  // Sends every client a close frame; later upgrades are closed at once.
  void close_all();

  std::size_t clients() const { return sessions_.size(); }
  bool full() const { return sessions_.size() >= options_.max_clients; }
  LiveStreamStats stats() const;
  const LiveStreamOptions& options() const { return options_; }

  // For the sessions.
  class Session {
   public:
    virtual ~Session() = default;
    virtual void send(std::shared_ptr<const std::string> message) = 0;
    virtual void close() = 0;
  };
  void on_open(std::uint64_t id, const std::shared_ptr<Session>& session);
  void on_finished(std::uint64_t id, bool dropped_slow);
  std::uint64_t next_id() { return ++last_id_; }
  const std::shared_ptr<spdlog::logger>& log() const { return log_; }

 private:
  template <class Stream>
  void start_session(Stream stream, HttpRequest upgrade);

  std::shared_ptr<spdlog::logger> log_;
  LiveStreamOptions options_;
  std::function<std::string()> snapshot_;
  std::map<std::uint64_t, std::weak_ptr<Session>> sessions_;
  std::uint64_t last_id_ = 0;
  bool closing_ = false;
  LiveStreamStats stats_;
};

}  // namespace postwatch::aggregator
