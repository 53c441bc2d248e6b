// HTTPS and wss:// for the feed (--tls-cert/--tls-key), with a throwaway self-signed
// certificate made by the openssl command; the client verifies the server against it.
#include "support/feed_http.hpp"
#include "support/self_signed_cert.hpp"

#include <gtest/gtest.h>
#include <boost/asio/ssl.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

using namespace postwatch;
using namespace postwatch::test;
using namespace std::chrono_literals;
namespace beast = boost::beast;
namespace ssl = boost::asio::ssl;
namespace websocket = beast::websocket;

namespace {

using Certificate = SelfSignedCert;

ssl::context client_context(const Certificate& c) {
  ssl::context ctx(ssl::context::tls_client);
  ctx.load_verify_file(c.cert.string());
  ctx.set_verify_mode(ssl::verify_peer);
  return ctx;
}

// GET over HTTPS; status 0 when the connection or the TLS handshake fails.
HttpReply https_get(unsigned short port, const Certificate& c, const std::string& target,
                    const std::map<std::string, std::string>& headers = {}) {
  HttpReply reply;
  try {
    boost::asio::io_context io;
    auto ctx = client_context(c);
    beast::ssl_stream<beast::tcp_stream> stream(io, ctx);
    beast::get_lowest_layer(stream).expires_after(5s);
    beast::get_lowest_layer(stream).connect({boost::asio::ip::make_address("127.0.0.1"), port});
    stream.handshake(ssl::stream_base::client);
    feedhttp::request<feedhttp::string_body> req{feedhttp::verb::get, target, 11};
    req.set(feedhttp::field::host, "127.0.0.1");
    for (const auto& [k, v] : headers) req.set(k, v);
    reply = http_exchange(stream, req);
  } catch (const std::exception&) {
    reply.status = 0;
  }
  return reply;
}

std::vector<std::string> args(const MosquittoBroker& broker, const TempDir& dir, unsigned short port,
                              std::vector<std::string> extra) {
  std::vector<std::string> a = {(binary_dir() / "aggregator" / "postwatch-aggregator").string(),
                                "--broker",
                                broker.uri(),
                                "--http-port",
                                std::to_string(port),
                                "--catalogue",
                                catalogue_path().string(),
                                "--data-dir",
                                (dir.path() / "data").string(),
                                "--min-duration-s",
                                "0",
                                "--tick-ms",
                                "50"};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

}  // namespace

TEST(FeedTls, ServesHttpsAndWssOnly) {
  TempDir dir;
  MosquittoBroker broker;
  Certificate cert(dir);
  TokensFile tokens(dir);
  const unsigned short port = free_port();
  ChildProcess agg(
      args(broker, dir, port,
           {"--tls-cert", cert.cert.string(), "--tls-key", cert.key.string(), "--tokens-file", tokens.path.string()}),
      dir.path() / "agg.log");
  ASSERT_TRUE(wait_until([&] { return https_get(port, cert, "/readyz").status == 200 || !agg.running(); }, 15s))
      << agg.log();
  EXPECT_NE(agg.log().find("https://127.0.0.1:" + std::to_string(port)), std::string::npos) << agg.log();
  EXPECT_EQ(https_get(port, cert, "/api/v1/goals").status, 401);
  EXPECT_EQ(https_get(port, cert, "/api/v1/goals", bearer(TokensFile::kRead)).status, 200);
  EXPECT_EQ(https_get(port, cert, "/").status, 200);
  // Plain HTTP on the TLS port gets nothing.
  EXPECT_EQ(http_call(port, feedhttp::verb::get, "/healthz").status, 0);

  // The live stream over wss://.
  boost::asio::io_context io;
  auto ctx = client_context(cert);
  websocket::stream<beast::ssl_stream<beast::tcp_stream>> ws(io, ctx);
  beast::get_lowest_layer(ws).expires_after(5s);
  beast::get_lowest_layer(ws).connect({boost::asio::ip::make_address("127.0.0.1"), port});
  ws.next_layer().handshake(ssl::stream_base::client);
  beast::get_lowest_layer(ws).expires_never();
  ws.handshake("127.0.0.1", std::string("/api/v1/stream?token=") + TokensFile::kRead);
  beast::flat_buffer buf;
  bool done = false;
  beast::error_code ec;
  ws.async_read(buf, [&](beast::error_code e, std::size_t) {
    ec = e;
    done = true;
  });
  io.run_for(5s);
  ASSERT_TRUE(done);
  ASSERT_FALSE(ec) << ec.message();
  auto snap = nlohmann::json::parse(beast::buffers_to_string(buf.data()), nullptr, false);
  EXPECT_EQ(snap["type"], "snapshot");
  EXPECT_EQ(snap["goals"].size(), 13u);
}

TEST(FeedTls, RefusesIncompleteOrBrokenTlsSettings) {
  TempDir dir;
  MosquittoBroker broker;
  Certificate cert(dir);
  ChildProcess only_cert(args(broker, dir, free_port(), {"--tls-cert", cert.cert.string()}), dir.path() / "a.log");
  EXPECT_EQ(only_cert.wait(15s), 2) << only_cert.log();
  EXPECT_NE(only_cert.log().find("--tls-key"), std::string::npos) << only_cert.log();
  ChildProcess wrong_key(
      args(broker, dir, free_port(), {"--tls-cert", cert.cert.string(), "--tls-key", cert.cert.string()}),
      dir.path() / "b.log");
  EXPECT_EQ(wrong_key.wait(15s), 2) << wrong_key.log();
  EXPECT_NE(wrong_key.log().find("cert.pem"), std::string::npos) << wrong_key.log();
  ChildProcess missing(args(broker, dir, free_port(),
                            {"--tls-cert", (dir.path() / "nope.pem").string(), "--tls-key", cert.key.string()}),
                       dir.path() / "c.log");
  EXPECT_EQ(missing.wait(15s), 2) << missing.log();
  EXPECT_NE(missing.log().find("nope.pem"), std::string::npos) << missing.log();
}
