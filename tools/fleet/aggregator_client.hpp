// AggregatorClient: one synchronous HTTP(S) request at a time to the aggregator's API, as
// postwatch-fleet's operator subcommands make them (rollout, command).
// Every failure becomes one line for the operator: the aggregator not reached, no answer within
// the timeout, the token refused or of the read role, or the API's own error message.
#pragma once

#include <boost/beast/http/verb.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>

namespace postwatch::fleet {

// The aggregator's address: http://host[:port] or https://host[:port], nothing after the port.
struct AggregatorUrl {
  bool tls = false;
  std::string host, port;
  std::string text;  // as given, without a trailing '/': named in errors
  // Throws std::invalid_argument naming what is wrong.
  static AggregatorUrl parse(const std::string& url);
};

struct AggregatorClientOptions {
  AggregatorUrl url;
  std::string token;                 // the bearer token; empty: none is sent (an aggregator with an open API)
  std::string ca_file;               // https: the CA to verify the server's certificate with; empty: the system's
  std::chrono::seconds timeout{10};  // for the whole request: connect, TLS handshake, send, answer
  // Named when a read token is refused (HTTP 403): "<what> need the operator role".
  std::string needs_operator = "these requests";
};

// The aggregator was not reached or did not answer: nothing was done there.
struct AggregatorUnreachable : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The aggregator answered with an HTTP error; what() is the line for the operator.
struct AggregatorRefusal : std::runtime_error {
  AggregatorRefusal(unsigned status, std::string api_message, const std::string& line)
      : std::runtime_error(line), status(status), api_message(std::move(api_message)) {}
  unsigned status;
  std::string api_message;  // {"error": {"message": …}}, or the body when it is not that
};

struct AggregatorReply {
  unsigned status = 0;
  std::string body;
  // The body as JSON; throws std::runtime_error when it is not.
  nlohmann::json json() const;
};

class AggregatorClient {
 public:
  explicit AggregatorClient(AggregatorClientOptions options);

  // A 2xx answer; throws AggregatorUnreachable or AggregatorRefusal otherwise. A body given is
  // sent as application/json.
  AggregatorReply call(boost::beast::http::verb method, const std::string& target,
                       const std::optional<nlohmann::json>& body = std::nullopt) const;
  AggregatorReply get(const std::string& target) const { return call(boost::beast::http::verb::get, target); }
  AggregatorReply post(const std::string& target, const std::optional<nlohmann::json>& body = std::nullopt) const {
    return call(boost::beast::http::verb::post, target, body);
  }
  const AggregatorUrl& url() const { return options_.url; }

 private:
  AggregatorRefusal refusal(unsigned status, const std::string& body) const;

  AggregatorClientOptions options_;
};

}  // namespace postwatch::fleet
