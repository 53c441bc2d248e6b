// Helpers for the operations-centre feed tests: an HTTP client with methods, headers
// and bodies; a WebSocket client that waits on the socket with a deadline; raw event
// batches published straight to the broker; tokens files.
#pragma once

#include "postwatch/clock.hpp"
#include "postwatch/wire_codec.hpp"
#include "support/aggregator_process.hpp"

#include <mqtt/async_client.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace postwatch::test {

namespace feedhttp = boost::beast::http;

struct HttpReply {
  int status = 0;  // 0 when the request failed
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
  nlohmann::json json() const { return nlohmann::json::parse(body, nullptr, false); }
  // A member of the body, by value: safe to loop over (a range-for over json()["x"] would
  // iterate a destroyed temporary).
  nlohmann::json json_at(const std::string& key) const {
    auto j = json();
    return j.is_object() && j.contains(key) ? j[key] : nlohmann::json::array();
  }
};

inline HttpReply http_call(unsigned short port, feedhttp::verb method, const std::string& target,
                           const std::map<std::string, std::string>& headers = {}, const std::string& body = "") {
  namespace beast = boost::beast;
  HttpReply reply;
  try {
    boost::asio::io_context io;
    beast::tcp_stream stream(io);
    stream.expires_after(std::chrono::seconds(5));
    stream.connect(boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port));
    feedhttp::request<feedhttp::string_body> req{method, target, 11};
    req.set(feedhttp::field::host, "127.0.0.1:" + std::to_string(port));
    for (const auto& [k, v] : headers) req.set(k, v);
    req.body() = body;
    req.prepare_payload();
    feedhttp::write(stream, req);
    beast::flat_buffer buf;
    feedhttp::response<feedhttp::string_body> res;
    feedhttp::read(stream, buf, res);
    reply.status = static_cast<int>(res.result_int());
    reply.body = res.body();
    for (const auto& f : res) {
      std::string name(f.name_string());
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      reply.headers[name] = std::string(f.value());
    }
    beast::error_code ec;
    stream.socket().shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
  } catch (const std::exception&) {
    reply.status = 0;
  }
  return reply;
}

inline std::map<std::string, std::string> bearer(const std::string& token) {
  return {{"Authorization", "Bearer " + token}};
}

// A tokens file with one read and one operator token, mode 0600.
struct TokensFile {
  static constexpr const char* kRead = "read-token-0123456789abcdef";
  static constexpr const char* kOperator = "operator-token-0123456789abcdef";
  std::filesystem::path path;
  explicit TokensFile(const TempDir& dir, const std::string& name = "tokens.json") : path(dir.path() / name) {
    nlohmann::json j{{"tokens",
                      {{{"token", kRead}, {"role", "read"}, {"name", "wall screen"}},
                       {{"token", kOperator}, {"role", "operator"}, {"name", "duty officer"}}}}};
    std::ofstream(path) << j.dump(2);
    std::filesystem::permissions(path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  }
};

// Publishes event batches as an agent would, straight to the broker (QoS 1).
class RawPublisher {
 public:
  explicit RawPublisher(const std::string& uri, const std::string& id = "feed-test-publisher") : client_(uri, id) {
    client_.connect()->wait();
  }
  ~RawPublisher() {
    try {
      client_.disconnect()->wait();
    } catch (...) {
    }
  }
  // One event of `indicator` = `value` observed now at `post`, with the agent's next seq.
  void event(const std::string& region, const std::string& post, const std::string& indicator, double value,
             ValueKind kind = ValueKind::Level, const std::string& agent = "t1") {
    EventBatch b{agent, post, now_utc_ms(), {}};
    b.events.push_back(IndicatorEvent{++seq_[post + "/" + agent], now_utc_ms(), indicator, kind, value, "", "", {}});
    raw("postwatch/v1/" + region + "/" + post + "/" + agent + "/events", encode_batch(b));
  }
  void raw(const std::string& topic, const std::vector<std::uint8_t>& payload) {
    client_.publish(topic, payload.data(), payload.size(), 1, false)->wait();
  }
  void raw(const std::string& topic, const std::string& payload) {
    client_.publish(topic, payload.data(), payload.size(), 1, false)->wait();
  }

 private:
  mqtt::async_client client_;
  std::map<std::string, std::uint64_t> seq_;
};

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
