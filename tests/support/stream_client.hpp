// A WebSocket client for the aggregator's /api/v1/stream that waits on the socket with a deadline.
#pragma once

#include "support/feed_http.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace postwatch::test {

// A WebSocket client for /api/v1/stream. Every wait is on the socket, with a deadline.
class StreamClient {
 public:
  // Returns the handshake's HTTP status: 101 when the stream is open.
  int connect(unsigned short port, const std::string& target, const std::map<std::string, std::string>& headers = {}) {
    namespace beast = boost::beast;
    namespace websocket = beast::websocket;
    beast::get_lowest_layer(ws_).expires_after(std::chrono::seconds(5));
    beast::get_lowest_layer(ws_).connect(
        boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port));
    beast::get_lowest_layer(ws_).expires_never();
    ws_.set_option(websocket::stream_base::decorator([headers](websocket::request_type& req) {
      for (const auto& [k, v] : headers) req.set(k, v);
    }));
    websocket::response_type res;
    beast::error_code ec;
    ws_.handshake(res, "127.0.0.1:" + std::to_string(port), target, ec);
    if (!ec) return static_cast<int>(res.result_int());
    // Beast 1.74 does not hand back a refused upgrade's response: ask again over plain
    // HTTP, with the same upgrade headers, to see the status and body.
    auto h = headers;
    h["Connection"] = "Upgrade";
    h["Upgrade"] = "websocket";
    h["Sec-WebSocket-Version"] = "13";
    h["Sec-WebSocket-Key"] = "dGhlIHNhbXBsZSBub25jZQ==";
    auto refused = http_call(port, feedhttp::verb::get, target, h);
    handshake_body_ = refused.body;
    return refused.status == 101 ? -1 : refused.status;
  }
  const std::string& handshake_body() const { return handshake_body_; }

  // The next message, or nullopt when the deadline passes or the stream ends (see error()).
  std::optional<nlohmann::json> next(std::chrono::milliseconds timeout) {
    namespace beast = boost::beast;
    if (broken_) return std::nullopt;
    beast::flat_buffer buf;
    bool done = false;
    ws_.async_read(buf, [&](beast::error_code ec, std::size_t) {
      error_ = ec;
      done = true;
    });
    io_.restart();
    io_.run_for(timeout);
    if (!done) {  // deadline: abandon the read (the stream is not usable after that)
      beast::get_lowest_layer(ws_).cancel();
      io_.restart();
      io_.run();
      broken_ = true;
      error_ = boost::asio::error::timed_out;
      return std::nullopt;
    }
    if (error_) {
      broken_ = true;
      return std::nullopt;
    }
    return nlohmann::json::parse(beast::buffers_to_string(buf.data()), nullptr, false);
  }

  // Reads until a message satisfies `pred`, or the deadline passes.
  template <class Pred>
  std::optional<nlohmann::json> next_where(Pred pred, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      auto m = next(left);
      if (!m) return std::nullopt;
      seen_.push_back(*m);
      if (pred(*m)) return m;
    }
  }

  boost::beast::error_code error() const { return error_; }
  boost::beast::websocket::close_reason close_reason() const { return ws_.reason(); }
  const std::vector<nlohmann::json>& seen() const { return seen_; }

 private:
  boost::asio::io_context io_;
  boost::beast::websocket::stream<boost::beast::tcp_stream> ws_{io_};
  std::string handshake_body_;
  boost::beast::error_code error_;
  bool broken_ = false;
  std::vector<nlohmann::json> seen_;
};

}  // namespace postwatch::test
