// A small HTTP/1.1 server on the aggregator's io_context (Beast): it parses
// requests and hands each to one handler, which runs on the io_context thread.
// Optionally HTTPS (use_tls). WebSocket upgrade requests that the upgrade check
// lets through are handed, connection and all, to a WebSocketAcceptor.
#pragma once

#include "feed/http_types.hpp"

#include <boost/asio/io_context.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace spdlog {
class logger;
}

namespace postwatch::aggregator {

class WebSocketAcceptor;  // feed/live_stream.hpp

struct HttpCallbacks {
  HttpHandler handle;
  // For WebSocket upgrade requests: a response refuses the upgrade (sent, then the connection
  // closes); nullopt hands the connection to `websockets`. Unset: every upgrade is accepted.
  std::function<std::optional<HttpResponse>(const HttpRequest&)> check_upgrade;
  std::shared_ptr<WebSocketAcceptor> websockets;  // null: upgrade requests get 404
  HttpDeferredHandler deferred;                   // asked before `handle`, when set
};

class HttpServer {
 public:
  HttpServer(boost::asio::io_context& io, std::shared_ptr<spdlog::logger> log, HttpCallbacks callbacks);
  ~HttpServer();
  // Serve HTTPS only, with this PEM certificate chain and private key. Call before listen();
  // throws std::runtime_error naming the file when it cannot be used.
  void use_tls(const std::string& cert_chain_file, const std::string& key_file);
  bool tls() const;
  // Binds and starts accepting; port 0 picks a free port. Throws on bind failure.
  void listen(const std::string& address, unsigned short port);
  void close();
  unsigned short port() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace postwatch::aggregator
