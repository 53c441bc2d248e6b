#include "in_process_fleet.hpp"

#include "fleet_enrolment.hpp"
#include "postwatch/agent/memory_backlog.hpp"

#include <spdlog/spdlog.h>

#include <condition_variable>
#include <mutex>
#include <thread>

namespace postwatch::sim {

namespace {

// Room for minutes of events at high rates while the broker is away; beyond that
// the agent refuses events and they count as rejected.
constexpr std::size_t kBacklogEvents = 200'000;
constexpr auto kStopTimeout = std::chrono::seconds(5);

}  // namespace

agent::AgentConfig in_process_agent_config(const AgentSpec& spec, const std::filesystem::path& catalogue_file) {
  agent::AgentConfig c;
  c.broker_uri = spec.broker_uri;
  c.broker_fallbacks = spec.broker_fallbacks;
  c.agent_id = spec.agent_id;
  c.post_id = spec.post_id;
  c.allow_plaintext = true;  // loopback demo broker
  c.catalogue_file = catalogue_file;
  c.batch_max_delay = std::chrono::milliseconds(100);  // the board should move within a tick or two
  c.queue_max_events = kBacklogEvents;
  c.compression = spec.compression;
  if (!spec.identity_dir.empty()) c.identity = identity_of(spec);
  return c;
}

InProcessFleet::InProcessFleet(const std::shared_ptr<const IndicatorCatalogue>& catalogue,
                               const std::filesystem::path& catalogue_file, const std::vector<AgentSpec>& agents,
                               bool quiet, const std::shared_ptr<spdlog::sinks::sink>& log_sink) {
  for (const auto& spec : agents) {
    auto config = in_process_agent_config(spec, catalogue_file);
    // Unregistered loggers: one per agent, named after it, all on the same sink.
    auto log = std::make_shared<spdlog::logger>(spec.label, log_sink);
    log->set_level(quiet ? spdlog::level::warn : spdlog::level::info);
    agents_.push_back(std::make_unique<agent::Agent>(std::move(config), catalogue,
                                                     std::make_unique<agent::MemoryBacklog>(kBacklogEvents), log));
  }
}

void InProcessFleet::start() {
  for (auto& a : agents_) a->start();
}

bool InProcessFleet::wait_connected(std::chrono::milliseconds timeout, const std::atomic<bool>& cancel) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (auto& a : agents_) {
    // Short waits so a signal during start-up is noticed promptly.
    while (!a->wait_until_connected(std::chrono::milliseconds(100))) {
      if (cancel || std::chrono::steady_clock::now() >= deadline) return false;
    }
  }
  return true;
}

bool InProcessFleet::drain_and_stop(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  bool drained = true;
  for (auto& a : agents_) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    drained = a->wait_until_drained(std::max(left, std::chrono::milliseconds(0))) && drained;
  }
  // Disconnecting takes a broker round trip per agent: do them side by side. Agent::stop()
  // joins the agent's publisher thread, which a connect that never returns holds forever
  // (docs/simulator.md, "Known problem"): give up on such agents after a while.
  struct Stopping {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<bool> stopped;
    std::size_t left = 0;
  };
  auto stopping = std::make_shared<Stopping>();
  stopping->stopped.assign(agents_.size(), false);
  stopping->left = agents_.size();
  for (std::size_t i = 0; i < agents_.size(); ++i)
    std::thread([stopping, agent = agents_[i].get(), i] {
      agent->stop();
      std::lock_guard lk(stopping->mu);
      stopping->stopped[i] = true;
      --stopping->left;
      stopping->cv.notify_all();
    }).detach();
  std::unique_lock lk(stopping->mu);
  stopping->cv.wait_for(lk, kStopTimeout, [&] { return stopping->left == 0; });
  for (std::size_t i = 0; i < agents_.size(); ++i)
    if (!stopping->stopped[i]) stuck_.push_back(i);
  return drained;
}

InProcessFleet::~InProcessFleet() {
  // Destroying a stuck agent would wait for its thread as well: leave it to the process's end.
  for (auto i : stuck_) static_cast<void>(agents_[i].release());
}

std::vector<std::string> InProcessFleet::stuck_agents() const {
  std::vector<std::string> ids;
  for (auto i : stuck_) ids.push_back(agents_[i]->config().agent_id);
  return ids;
}

FleetTotals InProcessFleet::totals() const {
  FleetTotals t;
  t.agents = agents_.size();
  for (const auto& a : agents_) {
    auto s = a->stats();
    t.accepted += s.accepted;
    t.sent += s.sent;
    t.confirmed += s.confirmed;
    t.rejected += s.rejected;
    t.backlog += s.backlog.events;
    t.connected += s.connected ? 1 : 0;
  }
  return t;
}

std::string InProcessFleet::last_error() const {
  for (const auto& a : agents_)
    if (auto s = a->stats(); !s.last_error.empty()) return s.last_error;
  return {};
}

}  // namespace postwatch::sim
