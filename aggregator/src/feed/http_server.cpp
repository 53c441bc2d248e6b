#include "feed/http_server.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>

#include <optional>

namespace postwatch::aggregator {

namespace beast = boost::beast;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(tcp::socket socket, std::shared_ptr<const HttpHandler> handler)
      : stream_(std::move(socket)), handler_(std::move(handler)) {}

  void start() { do_read(); }

 private:
  void do_read() {
    request_ = {};
    parser_.emplace();
    parser_->body_limit(64 * 1024);  // the API takes small bodies only
    stream_.expires_after(std::chrono::seconds(30));
    http::async_read(stream_, buffer_, *parser_, beast::bind_front_handler(&HttpSession::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    if (ec == http::error::end_of_stream) return do_close();
    if (ec) return;
    request_ = parser_->release();
    response_ = (*handler_)(request_);
    response_.version(request_.version());
    response_.keep_alive(request_.keep_alive());
    response_.prepare_payload();
    http::async_write(stream_, response_, beast::bind_front_handler(&HttpSession::on_write, shared_from_this()));
  }

  void on_write(beast::error_code ec, std::size_t) {
    if (ec) return;
    if (!response_.keep_alive()) return do_close();
    do_read();
  }

  void do_close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  HttpRequest request_;
  HttpResponse response_;
  std::shared_ptr<const HttpHandler> handler_;
};

}  // namespace

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  Impl(asio::io_context& io, std::shared_ptr<spdlog::logger> l, HttpHandler h)
      : acceptor(io), log(std::move(l)), handler(std::make_shared<const HttpHandler>(std::move(h))) {}

  void do_accept() {
    acceptor.async_accept([self = shared_from_this()](beast::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted || !self->acceptor.is_open()) return;
      if (!ec) std::make_shared<HttpSession>(std::move(socket), self->handler)->start();
      self->do_accept();
    });
  }

  tcp::acceptor acceptor;
  std::shared_ptr<spdlog::logger> log;
  std::shared_ptr<const HttpHandler> handler;
};

HttpServer::HttpServer(asio::io_context& io, std::shared_ptr<spdlog::logger> log, HttpHandler handler)
    : impl_(std::make_shared<Impl>(io, std::move(log), std::move(handler))) {}

HttpServer::~HttpServer() { close(); }

void HttpServer::listen(const std::string& address, unsigned short port) {
  tcp::endpoint ep(asio::ip::make_address(address), port);
  impl_->acceptor.open(ep.protocol());
  impl_->acceptor.set_option(asio::socket_base::reuse_address(true));
  impl_->acceptor.bind(ep);
  impl_->acceptor.listen(asio::socket_base::max_listen_connections);
  impl_->do_accept();
}

void HttpServer::close() {
  beast::error_code ec;
  impl_->acceptor.close(ec);
}

unsigned short HttpServer::port() const { return impl_->acceptor.local_endpoint().port(); }

}  // namespace postwatch::aggregator
