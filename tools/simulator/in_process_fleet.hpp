// The fleet as real postwatch::agent::Agent objects in this process, each with an
// in-memory backlog: hundreds of agents for the price of one process.
#pragma once

#include "fleet.hpp"

#include "postwatch/catalogue.hpp"

#include <filesystem>
#include <memory>
#include <vector>

namespace spdlog::sinks {
class sink;
}

namespace postwatch::sim {

// An in-process agent's config: plaintext on loopback, quick batches, an in-memory backlog, and
// the identity files of an enrolled fleet (fleet_enrolment.hpp).
agent::AgentConfig in_process_agent_config(const AgentSpec& spec, const std::filesystem::path& catalogue_file);

class InProcessFleet : public Fleet {
 public:
  // `quiet`: agents log warnings only.
  InProcessFleet(const std::shared_ptr<const IndicatorCatalogue>& catalogue,
                 const std::filesystem::path& catalogue_file, const std::vector<AgentSpec>& agents, bool quiet,
                 const std::shared_ptr<spdlog::sinks::sink>& log_sink);
  ~InProcessFleet() override;

  void start() override;
  bool wait_connected(std::chrono::milliseconds timeout, const std::atomic<bool>& cancel) override;
  bool drain_and_stop(std::chrono::milliseconds timeout) override;

  agent::SubmitResult submit(std::size_t agent, IndicatorEvent event) override {
    return agents_[agent]->submit(std::move(event));
  }
  std::size_t size() const override { return agents_.size(); }
  const std::string& agent_id(std::size_t agent) const override { return agents_[agent]->config().agent_id; }
  std::uint64_t backlog_events(std::size_t agent) const override { return agents_[agent]->stats().backlog.events; }
  FleetTotals totals() const override;
  std::string last_error() const override;
  std::vector<std::string> stuck_agents() const override;

 private:
  std::vector<std::unique_ptr<agent::Agent>> agents_;
  std::vector<std::size_t> stuck_;  // agents whose stop() had not returned when drain_and_stop() gave up
};

}  // namespace postwatch::sim
