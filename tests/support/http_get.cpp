// A blocking HTTP GET for tests, in its own file: it needs Boost.Beast, which the agent-only
// (cross) build of the agent's unit tests does not have.
#include "support/test_support.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace postwatch::test {

HttpResult http_get(unsigned short port, const std::string& target) {
  namespace beast = boost::beast;
  namespace http = beast::http;
  HttpResult result;
  try {
    boost::asio::io_context io;
    beast::tcp_stream stream(io);
    stream.expires_after(std::chrono::seconds(5));
    stream.connect(boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port));
    http::request<http::string_body> req{http::verb::get, target, 11};
    req.set(http::field::host, "127.0.0.1");
    http::write(stream, req);
    beast::flat_buffer buf;
    http::response<http::string_body> res;
    http::read(stream, buf, res);
    result.status = static_cast<int>(res.result_int());
    result.body = res.body();
    beast::error_code ec;
    stream.socket().shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
  } catch (const std::exception&) {
    result.status = 0;
  }
  return result;
}

}  // namespace postwatch::test
