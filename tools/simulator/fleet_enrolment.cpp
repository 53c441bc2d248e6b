#include "fleet_enrolment.hpp"

#include "in_process_fleet.hpp"
#include "postwatch/agent/enrolment_client.hpp"

#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace postwatch::sim {

namespace {

namespace http = boost::beast::http;
using nlohmann::json;

struct Address {
  std::string host, port;
};

Address parse_api(const std::string& api) {
  const std::string scheme = "http://";
  if (api.rfind(scheme, 0) != 0) throw std::runtime_error("--enrol must be an http://host:port address, not " + api);
  auto rest = api.substr(scheme.size());
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  auto colon = rest.rfind(':');
  if (colon == std::string::npos || colon + 1 == rest.size() || rest.find('/') != std::string::npos)
    throw std::runtime_error("--enrol must be an http://host:port address, not " + api);
  return {rest.substr(0, colon), rest.substr(colon + 1)};
}

// POST /api/v1/enrolment-tokens for one agent: the token, or throws with the aggregator's answer.
std::string issue_token(const Address& at, const std::string& bearer, const AgentSpec& spec) {
  boost::asio::io_context io;
  boost::beast::tcp_stream stream(io);
  stream.expires_after(std::chrono::seconds(10));
  stream.connect(boost::asio::ip::tcp::resolver(io).resolve(at.host, at.port));
  http::request<http::string_body> req{http::verb::post, "/api/v1/enrolment-tokens", 11};
  req.set(http::field::host, at.host + ":" + at.port);
  req.set(http::field::authorization, "Bearer " + bearer);
  req.set(http::field::content_type, "application/json");
  req.body() = json{{"post", spec.post_id}, {"agent", spec.agent_id}, {"valid_minutes", 10}}.dump();
  req.prepare_payload();
  http::write(stream, req);
  boost::beast::flat_buffer buf;
  http::response<http::string_body> res;
  http::read(stream, buf, res);
  boost::beast::error_code ec;
  stream.socket().shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
  auto body = json::parse(res.body(), nullptr, false);
  if (res.result() == http::status::created && body.is_object() && body.contains("token") && body["token"].is_string())
    return body["token"].get<std::string>();
  // The API's errors: {"error": {"status": …, "message": …}} (docs/operations.md).
  std::string why = res.body();
  if (body.is_object() && body.contains("error") && body["error"].is_object())
    why = body["error"].value("message", why);
  throw std::runtime_error("the aggregator refused a token (HTTP " + std::to_string(res.result_int()) + ": " + why +
                           ")");
}

}  // namespace

agent::IdentityConfig identity_of(const AgentSpec& spec) {
  agent::IdentityConfig id;
  id.key_file = spec.identity_dir / "agent.key";
  id.aggregator_key_file = spec.identity_dir / "aggregator.pub";
  return id;
}

void enrol_fleet(std::vector<AgentSpec>& specs, const IndicatorCatalogue& catalogue,
                 const std::filesystem::path& catalogue_file, const FleetEnrolment& how, spdlog::logger& log) {
  const auto at = parse_api(how.api);
  for (auto& spec : specs) {
    spec.identity_dir = how.dir / spec.agent_id;
    std::filesystem::create_directories(spec.identity_dir);
  }
  // enrol_agent's own lines (key made, answer) would be hundreds: the failures come back in its outcome.
  auto quiet = std::make_shared<spdlog::logger>("enrol", std::make_shared<spdlog::sinks::null_sink_mt>());
  std::atomic<std::size_t> next{0}, done{0};
  std::mutex mu;
  std::string first_failure;
  auto worker = [&] {
    for (std::size_t i; (i = next.fetch_add(1)) < specs.size();) {
      {
        std::lock_guard lk(mu);
        if (!first_failure.empty()) return;
      }
      const auto& spec = specs[i];
      std::string why;
      try {
        auto config = in_process_agent_config(spec, catalogue_file);
        auto outcome =
            agent::enrol_agent(config, catalogue, issue_token(at, how.bearer, spec), std::chrono::seconds(30), *quiet);
        if (outcome.exit_code != 0) why = outcome.message;
      } catch (const std::exception& e) {
        why = e.what();
      }
      if (!why.empty()) {
        std::lock_guard lk(mu);
        if (first_failure.empty()) first_failure = spec.agent_id + " (" + spec.post_id + "): " + why;
        return;
      }
      done.fetch_add(1);
    }
  };
  const auto started = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < std::max<std::size_t>(1, how.parallel); ++t) threads.emplace_back(worker);
  for (auto& t : threads) t.join();
  if (!first_failure.empty())
    throw std::runtime_error("could not enrol " + first_failure + " (" + std::to_string(done.load()) + " of " +
                             std::to_string(specs.size()) + " agents enrolled)");
  log.info("enrolled {} agents with {} in {:.1f} s; their keys are in {}", specs.size(), how.api,
           std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(), how.dir.string());
}

}  // namespace postwatch::sim
