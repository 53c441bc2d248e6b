// A webhook receiver for the alerting tests: a real HTTP server on a loopback port, on a thread
// of its own, that keeps every POST it gets. stop() closes the port (the receiver is "down":
// connections are refused); start() listens again on the same port.
#pragma once

#include "support/test_support.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace postwatch::test {

struct ReceivedWebhook {
  std::string target, body, signature, timestamp;
  nlohmann::json json() const { return nlohmann::json::parse(body, nullptr, false); }
};

class WebhookReceiver {
 public:
  WebhookReceiver() : port_(free_port()) { start(); }
  ~WebhookReceiver() { stop(); }
  WebhookReceiver(const WebhookReceiver&) = delete;
  WebhookReceiver& operator=(const WebhookReceiver&) = delete;

  unsigned short port() const { return port_; }
  std::string url(const std::string& path = "/hook") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

  void start() {
    if (thread_.joinable()) return;
    io_ = std::make_unique<boost::asio::io_context>();
    acceptor_ = std::make_unique<boost::asio::ip::tcp::acceptor>(
        *io_, boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port_));
    accept();
    thread_ = std::thread([this] { io_->run(); });
  }
  void stop() {
    if (!thread_.joinable()) return;
    boost::asio::post(*io_, [this] {
      boost::system::error_code ec;
      acceptor_->close(ec);
      io_->stop();
    });
    thread_.join();
    acceptor_.reset();
    io_.reset();
  }

  std::vector<ReceivedWebhook> received() const {
    std::lock_guard lock(mutex_);
    return received_;
  }
  // Every alarm change received so far, across notifications, each with its notification_id.
  std::vector<nlohmann::json> alarm_changes() const {
    std::vector<nlohmann::json> out;
    for (const auto& r : received())
      for (auto a : r.json().value("alarms", nlohmann::json::array())) {
        a["notification_id"] = r.json()["notification_id"];
        out.push_back(a);
      }
    return out;
  }

 private:
  void accept() {
    acceptor_->async_accept([this](boost::system::error_code ec, boost::asio::ip::tcp::socket socket) {
      if (ec) return;
      serve(std::move(socket));  // one request per connection; a test server, so inline
      accept();
    });
  }
  void serve(boost::asio::ip::tcp::socket socket) {
    namespace beast = boost::beast;
    namespace http = beast::http;
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buf;
    http::request<http::string_body> req;
    beast::error_code ec;
    stream.expires_after(std::chrono::seconds(5));
    http::read(stream, buf, req, ec);
    if (ec) return;
    {
      std::lock_guard lock(mutex_);
      received_.push_back({std::string(req.target()), req.body(), std::string(req["X-Postwatch-Signature"]),
                           std::string(req["X-Postwatch-Timestamp"])});
    }
    http::response<http::string_body> res{http::status::ok, 11};
    res.set(http::field::connection, "close");
    res.body() = "ok";
    res.prepare_payload();
    http::write(stream, res, ec);
    stream.socket().shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
  }

  unsigned short port_;
  std::unique_ptr<boost::asio::io_context> io_;
  std::unique_ptr<boost::asio::ip::tcp::acceptor> acceptor_;
  std::thread thread_;
  mutable std::mutex mutex_;
  std::vector<ReceivedWebhook> received_;
};

}  // namespace postwatch::test
