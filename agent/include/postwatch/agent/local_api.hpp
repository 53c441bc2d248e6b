// The local API: a Unix-domain socket for post staff and local apps. Each request is one line
// holding a JSON event object or an array of them; each answer is one line
//   {"results":[{"accepted":true,"seq":12},{"accepted":false,"error":"unknown indicator 'x'"}]}
// in the request's order. Each event is accepted or refused on its own (docs/agent.md, "Local API").
#pragma once

#include "postwatch/agent/agent_config.hpp"
#include "postwatch/agent/event_source.hpp"

#include <atomic>
#include <memory>
#include <string>
#include <thread>

namespace spdlog {
class logger;
}

namespace postwatch::agent {

class LocalApiServer : public EventSource {
 public:
  LocalApiServer(LocalApiConfig config, std::shared_ptr<const IndicatorCatalogue> catalogue, EventSink sink,
                 std::shared_ptr<spdlog::logger> log);
  ~LocalApiServer() override;

  std::string_view name() const override { return "local_api"; }
  // Binds the socket (replacing a stale one left by a crash) with the configured mode; throws
  // std::runtime_error when it cannot.
  void start() override;
  void stop() override;

  // The answer line (without newline) to one request line.
  std::string answer(std::string_view request);

 private:
  void serve();

  LocalApiConfig config_;
  std::shared_ptr<const IndicatorCatalogue> catalogue_;
  EventSink sink_;
  std::shared_ptr<spdlog::logger> log_;
  int listen_fd_ = -1;
  int wake_pipe_[2] = {-1, -1};  // written by stop() to end poll()
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

// The client side, for `postwatch-agent send`: sends one request line, returns the answer line.
// Throws std::runtime_error when the socket cannot be reached or closes without answering.
std::string local_api_request(const std::filesystem::path& socket, const std::string& request,
                              std::chrono::milliseconds timeout);

}  // namespace postwatch::agent
