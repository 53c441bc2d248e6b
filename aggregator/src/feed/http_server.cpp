#include "feed/http_server.hpp"

#include "feed/live_stream.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include <optional>
#include <type_traits>

namespace postwatch::aggregator {

namespace beast = boost::beast;
namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;

namespace {

HttpResponse plain_error(http::status status, const std::string& message) {
  HttpResponse res{status, 11};
  res.set(http::field::content_type, "application/json");
  res.body() =
      R"({"error":{"status":)" + std::to_string(static_cast<int>(status)) + R"(,"message":")" + message + "\"}}";
  return res;
}

// One connection: reads requests, answers each in turn (keep-alive), or hands the
// connection over on a WebSocket upgrade. Stream is beast::tcp_stream or TlsStream.
template <class Stream>
class HttpSession : public std::enable_shared_from_this<HttpSession<Stream>> {
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;

 public:
  template <class... Args>
  explicit HttpSession(std::shared_ptr<const HttpCallbacks> callbacks, std::shared_ptr<spdlog::logger> log,
                       Args&&... args)
      : stream_(std::forward<Args>(args)...), callbacks_(std::move(callbacks)), log_(std::move(log)) {}

  void start() {
    if constexpr (kTls) {
      beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(10));
      stream_.async_handshake(ssl::stream_base::server,
                              beast::bind_front_handler(&HttpSession::on_handshake, this->shared_from_this()));
    } else {
      do_read();
    }
  }

 private:
  void on_handshake(beast::error_code ec) {
    if (ec) {
      log_->debug("TLS handshake failed: {}", ec.message());
      return;
    }
    do_read();
  }

  void do_read() {
    request_ = {};
    parser_.emplace();
    parser_->body_limit(std::uint64_t{64} * 1024);  // the API takes small bodies only
    parser_->header_limit(16 * 1024);
    beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(30));
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&HttpSession::on_read, this->shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    if (ec == http::error::end_of_stream) return do_close();
    if (ec == http::error::body_limit || ec == http::error::header_limit) {
      response_ = plain_error(http::status::payload_too_large, "request too large");
      response_.keep_alive(false);
      return write_response(11);
    }
    if (ec) return;
    request_ = parser_->release();
    if (beast::websocket::is_upgrade(request_)) {
      std::optional<HttpResponse> refusal;
      if (!callbacks_->websockets)
        refusal = plain_error(http::status::not_found, "no WebSocket endpoint here");
      else if (callbacks_->check_upgrade)
        refusal = callbacks_->check_upgrade(request_);
      if (!refusal) {
        beast::get_lowest_layer(stream_).expires_never();  // the WebSocket's own timeouts take over
        callbacks_->websockets->accept(std::move(stream_), std::move(request_));
        return;
      }
      response_ = std::move(*refusal);
      response_.keep_alive(false);
      return write_response(request_.version());
    }
    try {
      if (callbacks_->deferred) {
        // The answer comes back on this session's executor, whichever thread made it.
        auto reply = [self = this->shared_from_this()](HttpResponse r) {
          auto exec = self->stream_.get_executor();
          asio::post(exec, [self, r = std::move(r)]() mutable { self->answer(std::move(r)); });
        };
        if (callbacks_->deferred(request_, reply)) return;
      }
      response_ = callbacks_->handle(request_);
    } catch (const std::exception& e) {
      log_->error("request handler failed: {}", e.what());
      response_ = plain_error(http::status::internal_server_error, "internal error; see the aggregator log");
    }
    answer(std::move(response_));
  }

  void answer(HttpResponse r) {
    response_ = std::move(r);
    response_.keep_alive(request_.keep_alive());
    write_response(request_.version());
  }

  void write_response(unsigned version) {
    response_.version(version);
    response_.prepare_payload();
    if (request_.method() == http::verb::head) {
      auto n = response_.body().size();
      response_.body().clear();
      response_.content_length(n);
    }
    beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(30));
    http::async_write(stream_, response_, beast::bind_front_handler(&HttpSession::on_write, this->shared_from_this()));
  }

  void on_write(beast::error_code ec, std::size_t) {
    if (ec) return;
    if (!response_.keep_alive()) return do_close();
    do_read();
  }

  void do_close() {
    if constexpr (kTls) {
      beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(5));
      stream_.async_shutdown([self = this->shared_from_this()](beast::error_code) {});
    } else {
      beast::error_code ec;
      stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    }
  }

  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  HttpRequest request_;
  HttpResponse response_;
  std::shared_ptr<const HttpCallbacks> callbacks_;
  std::shared_ptr<spdlog::logger> log_;
};

}  // namespace

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  Impl(asio::io_context& io, std::shared_ptr<spdlog::logger> l, HttpCallbacks cb)
      : acceptor(io), log(std::move(l)), callbacks(std::make_shared<const HttpCallbacks>(std::move(cb))) {}

  void do_accept() {
    acceptor.async_accept([self = shared_from_this()](beast::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted || !self->acceptor.is_open()) return;
      if (!ec) {
        if (self->tls)
          std::make_shared<HttpSession<TlsStream>>(self->callbacks, self->log, std::move(socket), *self->tls)->start();
        else
          std::make_shared<HttpSession<beast::tcp_stream>>(self->callbacks, self->log, std::move(socket))->start();
      }
      self->do_accept();
    });
  }

  tcp::acceptor acceptor;
  std::shared_ptr<spdlog::logger> log;
  std::shared_ptr<const HttpCallbacks> callbacks;
  std::optional<ssl::context> tls;
};

HttpServer::HttpServer(asio::io_context& io, std::shared_ptr<spdlog::logger> log, HttpCallbacks callbacks)
    : impl_(std::make_shared<Impl>(io, std::move(log), std::move(callbacks))) {}

HttpServer::~HttpServer() { close(); }

void HttpServer::use_tls(const std::string& cert_chain_file, const std::string& key_file) {
  ssl::context ctx(ssl::context::tls_server);
  ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                  ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
  beast::error_code ec;
  ctx.use_certificate_chain_file(cert_chain_file, ec);
  if (ec) throw std::runtime_error("TLS certificate " + cert_chain_file + ": " + ec.message());
  ctx.use_private_key_file(key_file, ssl::context::pem, ec);
  if (ec) throw std::runtime_error("TLS private key " + key_file + ": " + ec.message());
  if (SSL_CTX_check_private_key(ctx.native_handle()) != 1)
    throw std::runtime_error("TLS private key " + key_file + " does not match the certificate " + cert_chain_file);
  impl_->tls.emplace(std::move(ctx));
}

bool HttpServer::tls() const { return impl_->tls.has_value(); }

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
