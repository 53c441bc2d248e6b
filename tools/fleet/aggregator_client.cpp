// The requests run as asynchronous operations on a private io_context: Beast's timeouts
// (tcp_stream::expires_at) apply only to those, and a synchronous read from an aggregator that
// accepted the connection but never answers would wait for ever.
#include "aggregator_client.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <algorithm>
#include <charconv>

namespace postwatch::fleet {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using nlohmann::json;

namespace {

// Runs the asynchronous operation `start` begins on `io` to its end and returns its error.
template <typename Start>
beast::error_code run_to_end(asio::io_context& io, Start&& start) {
  beast::error_code result;
  start([&result](beast::error_code ec, auto&&...) { result = ec; });
  io.restart();
  io.run();
  return result;
}

// One line, not too long: an error message goes on one line of stderr.
std::string one_line(std::string text, std::size_t max = 300) {
  std::replace(text.begin(), text.end(), '\n', ' ');
  std::replace(text.begin(), text.end(), '\r', ' ');
  if (text.size() > max) text = text.substr(0, max) + "…";
  return text;
}

bool is_ip_address(const std::string& host) {
  beast::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

}  // namespace

AggregatorUrl AggregatorUrl::parse(const std::string& url) {
  AggregatorUrl u;
  std::string rest;
  if (url.starts_with("http://")) {
    rest = url.substr(7);
  } else if (url.starts_with("https://")) {
    u.tls = true;
    rest = url.substr(8);
  } else {
    throw std::invalid_argument("the aggregator's URL must be http://HOST:PORT or https://HOST:PORT, not '" + url +
                                "'");
  }
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  if (rest.find_first_of("/?#@") != std::string::npos)
    throw std::invalid_argument("the aggregator's URL is SCHEME://HOST[:PORT] without a path, user or query, not '" +
                                url + "'");
  u.text = (u.tls ? "https://" : "http://") + rest;
  std::string after_host;
  if (rest.starts_with("[")) {  // [::1]:8080
    const auto close = rest.find(']');
    if (close == std::string::npos) throw std::invalid_argument("no ']' after the IPv6 address in '" + url + "'");
    u.host = rest.substr(1, close - 1);
    after_host = rest.substr(close + 1);
  } else {
    const auto colon = rest.find(':');
    u.host = rest.substr(0, colon);
    after_host = colon == std::string::npos ? "" : rest.substr(colon);
  }
  if (u.host.empty()) throw std::invalid_argument("no host in the aggregator's URL '" + url + "'");
  u.port = u.tls ? "443" : "80";
  if (!after_host.empty()) {
    unsigned port = 0;
    const auto digits = std::string_view(after_host).substr(1);
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
    if (after_host[0] != ':' || ec != std::errc() || end != digits.data() + digits.size() || port == 0 || port > 65535)
      throw std::invalid_argument("the port in the aggregator's URL '" + url + "' must be a number from 1 to 65535");
    u.port = std::string(digits);
  }
  return u;
}

nlohmann::json AggregatorReply::json() const {
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded()) throw std::runtime_error("the aggregator's answer is not JSON: " + one_line(body, 200));
  return j;
}

AggregatorClient::AggregatorClient(AggregatorClientOptions options) : options_(std::move(options)) {}

AggregatorRefusal AggregatorClient::refusal(unsigned status, const std::string& body) const {
  // The API's errors are {"error": {"status": …, "message": …}} (docs/operations.md).
  std::string message = body;
  if (auto j = json::parse(body, nullptr, false); j.is_object()) {
    if (auto e = j.find("error"); e != j.end() && e->is_object())
      if (auto m = e->find("message"); m != e->end() && m->is_string()) message = m->get<std::string>();
  }
  message = one_line(message);
  const std::string answer = "(HTTP " + std::to_string(status) + ": " + message + ")";
  std::string line;
  if (status == 401 && options_.token.empty())
    line = "the aggregator at " + url().text + " needs a token " + answer +
           ": give an operator token with --token-file FILE or POSTWATCH_TOKEN";
  else if (status == 401)
    line = "the aggregator at " + url().text + " refused the token " + answer;
  else if (status == 403 && message.find("has role read") != std::string::npos)
    line = "the token has the read role only: " + options_.needs_operator + " need the operator role " + answer;
  else
    line = "the aggregator answered HTTP " + std::to_string(status) + ": " + message;
  return AggregatorRefusal(status, message, line);
}

AggregatorReply AggregatorClient::call(http::verb method, const std::string& target,
                                       const std::optional<json>& body) const {
  const auto& where = url().text;
  const auto deadline = std::chrono::steady_clock::now() + options_.timeout;
  const auto unreachable = [&](const std::string& why) {
    return AggregatorUnreachable("cannot reach the aggregator at " + where + ": " + why);
  };
  const auto no_answer = [&](const char* stage) {
    return AggregatorUnreachable("the aggregator at " + where + " did not answer within " +
                                 std::to_string(options_.timeout.count()) + " s (" + stage + ")");
  };

  asio::io_context io;
  tcp::resolver resolver(io);
  tcp::resolver::results_type endpoints;
  beast::error_code resolve_error;
  bool resolve_timed_out = false;
  asio::steady_timer resolve_timer(io, deadline);
  resolve_timer.async_wait([&](beast::error_code ec) {
    if (!ec) {
      resolve_timed_out = true;
      resolver.cancel();
    }
  });
  resolver.async_resolve(url().host, url().port, [&](beast::error_code ec, tcp::resolver::results_type found) {
    resolve_error = ec;
    endpoints = std::move(found);
    resolve_timer.cancel();
  });
  io.run();
  if (resolve_timed_out) throw no_answer("looking up its host name");
  if (resolve_error) throw unreachable("cannot look up " + url().host + ": " + resolve_error.message());

  http::request<http::string_body> req{method, target, 11};
  req.set(http::field::host, url().host + ":" + url().port);
  req.set(http::field::user_agent, "postwatch-fleet");
  req.set(http::field::accept, "application/json");
  if (!options_.token.empty()) req.set(http::field::authorization, "Bearer " + options_.token);
  if (body) {
    req.set(http::field::content_type, "application/json");
    req.body() = body->dump();
  }
  req.prepare_payload();
  http::response<http::string_body> res;

  // Connect, (TLS,) send, read: the same for both streams but the handshake.
  const auto exchange = [&](auto& stream, auto&& handshake) {
    auto& tcp_stream = beast::get_lowest_layer(stream);
    tcp_stream.expires_at(deadline);
    auto ec = run_to_end(io, [&](auto done) { tcp_stream.async_connect(endpoints, std::move(done)); });
    if (ec == beast::error::timeout) throw no_answer("connecting");
    if (ec) throw unreachable(ec.message());
    handshake();
    ec = run_to_end(io, [&](auto done) { http::async_write(stream, req, std::move(done)); });
    if (ec == beast::error::timeout) throw no_answer("sending the request");
    if (ec) throw unreachable("sending the request: " + ec.message());
    beast::flat_buffer buffer;
    ec = run_to_end(io, [&](auto done) { http::async_read(stream, buffer, res, std::move(done)); });
    if (ec == beast::error::timeout) throw no_answer("waiting for the answer");
    if (ec) throw unreachable("reading the answer: " + ec.message());
    beast::error_code ignored;
    tcp_stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  };

  if (!url().tls) {
    beast::tcp_stream stream(io);
    exchange(stream, [] {});
  } else {
    ssl::context context(ssl::context::tls_client);
    try {
      if (options_.ca_file.empty())
        context.set_default_verify_paths();
      else
        context.load_verify_file(options_.ca_file);
    } catch (const boost::system::system_error& e) {
      throw std::runtime_error("cannot load --ca " + options_.ca_file + ": " + e.code().message());
    }
    context.set_verify_mode(ssl::verify_peer);
    beast::ssl_stream<beast::tcp_stream> stream(io, context);
    // The certificate must name the host the URL names (its IP address when that is one).
    stream.set_verify_callback(ssl::host_name_verification(url().host));
    if (!is_ip_address(url().host)) SSL_set_tlsext_host_name(stream.native_handle(), url().host.c_str());
    exchange(stream, [&] {
      auto ec = run_to_end(io, [&](auto done) { stream.async_handshake(ssl::stream_base::client, std::move(done)); });
      if (ec == beast::error::timeout) throw no_answer("the TLS handshake");
      if (ec)
        throw unreachable("TLS handshake failed: " + ec.message() +
                          (options_.ca_file.empty() ? " (--ca FILE: the CA that signed its certificate)" : ""));
    });
  }

  const auto status = res.result_int();
  if (status < 200 || status > 299) throw refusal(status, res.body());
  return {status, std::move(res.body())};
}

}  // namespace postwatch::fleet
