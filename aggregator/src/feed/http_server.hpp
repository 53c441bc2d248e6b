// A small HTTP/1.1 server on the aggregator's io_context (Beast): it parses
// requests and hands each to one handler, which runs on the io_context thread.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http.hpp>

#include <functional>
#include <memory>
#include <string>

namespace spdlog {
class logger;
}

namespace postwatch::aggregator {

namespace http = boost::beast::http;
using HttpRequest = http::request<http::string_body>;
using HttpResponse = http::response<http::string_body>;
using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

class HttpServer {
 public:
  HttpServer(boost::asio::io_context& io, std::shared_ptr<spdlog::logger> log, HttpHandler handler);
  ~HttpServer();
  // Binds and starts accepting; port 0 picks a free port. Throws on bind failure.
  void listen(const std::string& address, unsigned short port);
  void close();
  unsigned short port() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace postwatch::aggregator
