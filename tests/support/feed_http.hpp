// An HTTP client for the aggregator's API with methods, headers and bodies, and a tokens file with
// one read and one operator token: what the feed and API tests call it with.
#pragma once

#include "support/test_support.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include <cctype>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

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

// One request over a connected stream, plain or TLS: the reply, header names in lower case.
template <class Stream>
HttpReply http_exchange(Stream& stream, const feedhttp::request<feedhttp::string_body>& req) {
  HttpReply reply;
  feedhttp::write(stream, req);
  boost::beast::flat_buffer buf;
  feedhttp::response<feedhttp::string_body> res;
  feedhttp::read(stream, buf, res);
  reply.status = static_cast<int>(res.result_int());
  reply.body = res.body();
  for (const auto& f : res) {
    std::string name(f.name_string());
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    reply.headers[name] = std::string(f.value());
  }
  return reply;
}

inline HttpReply http_call(unsigned short port, feedhttp::verb method, const std::string& target,
                           const std::map<std::string, std::string>& headers = {}, const std::string& body = "") {
  namespace beast = boost::beast;
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
    auto reply = http_exchange(stream, req);
    beast::error_code ec;
    stream.socket().shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
    return reply;
  } catch (const std::exception&) {
    return {};  // status 0: the request failed
  }
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

}  // namespace postwatch::test
