#include "fleet.hpp"

#include "postwatch/agent/memory_backlog.hpp"

#include <spdlog/spdlog.h>

#include <thread>

namespace postwatch::sim {

namespace {

// Room for minutes of events at high rates while the broker is away; beyond that
// the agent refuses events and they count as rejected.
constexpr std::size_t kBacklogEvents = 200'000;

agent::AgentConfig agent_config(const FleetOptions& options, const std::string& post_id, std::size_t n) {
  agent::AgentConfig c;
  c.broker_uri = options.broker_uri;
  c.agent_id = "sim-" + std::to_string(n) + "-" + options.run_tag;
  c.post_id = post_id;
  c.allow_plaintext = true;  // loopback demo broker
  c.catalogue_file = options.catalogue_file;
  c.batch_max_delay = std::chrono::milliseconds(100);  // the board should move within a tick or two
  c.queue_max_events = kBacklogEvents;
  return c;
}

}  // namespace

Fleet::Fleet(std::shared_ptr<const IndicatorCatalogue> catalogue, const FleetOptions& options,
             const std::vector<std::string>& post_ids, std::shared_ptr<spdlog::sinks::sink> log_sink) {
  for (std::size_t i = 0; i < post_ids.size(); ++i) {
    auto config = agent_config(options, post_ids[i], i + 1);
    // Unregistered loggers: one per agent, named after it, all on the same sink.
    auto log = std::make_shared<spdlog::logger>("sim-" + std::to_string(i + 1) + "/" + post_ids[i], log_sink);
    log->set_level(options.quiet ? spdlog::level::warn : spdlog::level::info);
    agents_.push_back(std::make_unique<agent::Agent>(std::move(config), catalogue,
                                                     std::make_unique<agent::MemoryBacklog>(kBacklogEvents), log));
  }
}

void Fleet::start() {
  for (auto& a : agents_) a->start();
}

bool Fleet::wait_connected(std::chrono::milliseconds timeout, const std::atomic<bool>& cancel) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (auto& a : agents_) {
    // Short waits so a signal during start-up is noticed promptly.
    while (!a->wait_until_connected(std::chrono::milliseconds(100))) {
      if (cancel || std::chrono::steady_clock::now() >= deadline) return false;
    }
  }
  return true;
}

bool Fleet::drain_and_stop(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  bool drained = true;
  for (auto& a : agents_) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    drained = a->wait_until_drained(std::max(left, std::chrono::milliseconds(0))) && drained;
  }
  // Disconnecting takes a broker round trip per agent: do them side by side.
  std::vector<std::thread> stoppers;
  for (auto& a : agents_) stoppers.emplace_back([&a] { a->stop(); });
  for (auto& t : stoppers) t.join();
  return drained;
}

FleetTotals Fleet::totals() const {
  FleetTotals t;
  t.agents = agents_.size();
  for (const auto& a : agents_) {
    auto s = a->stats();
    t.accepted += s.accepted;
    t.sent += s.sent;
    t.rejected += s.rejected;
    t.backlog += s.backlog.events;
    t.connected += s.connected ? 1 : 0;
  }
  return t;
}

std::string Fleet::last_error() const {
  for (const auto& a : agents_)
    if (auto s = a->stats(); !s.last_error.empty()) return s.last_error;
  return {};
}

}  // namespace postwatch::sim
