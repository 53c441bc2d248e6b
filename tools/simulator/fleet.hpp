// The simulated posts' agents: the real postwatch::agent::Agent, one per post, each
// with an in-memory backlog, all publishing to the same broker.
#pragma once

#include "postwatch/agent/agent.hpp"
#include "postwatch/catalogue.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace spdlog::sinks {
class sink;
}

namespace postwatch::sim {

struct FleetOptions {
  std::string broker_uri;
  // Part of every agent id. Seqs restart at 1 with each run (memory backlog), and the
  // aggregator drops seqs it has seen from an agent id as duplicates: each run needs
  // its own ids (docs/wire-format.md, "Sequence numbers and duplicates").
  std::string run_tag;
  std::filesystem::path catalogue_file;
  bool quiet = false;  // agents log warnings only
};

struct FleetTotals {
  std::uint64_t accepted = 0, sent = 0, rejected = 0, backlog = 0;
  std::size_t connected = 0, agents = 0;
};

class Fleet {
 public:
  // One agent per post id; agent ids are "sim-1-<run tag>", "sim-2-<run tag>", ... in that order.
  Fleet(std::shared_ptr<const IndicatorCatalogue> catalogue, const FleetOptions& options,
        const std::vector<std::string>& post_ids, std::shared_ptr<spdlog::sinks::sink> log_sink);

  void start();
  // True once every agent is connected; false at the deadline or when `cancel` is set.
  bool wait_connected(std::chrono::milliseconds timeout, const std::atomic<bool>& cancel);
  // Waits up to `timeout` for every accepted event to be acknowledged, then disconnects.
  bool drain_and_stop(std::chrono::milliseconds timeout);

  agent::SubmitResult submit(std::size_t agent, IndicatorEvent event) {
    return agents_[agent]->submit(std::move(event));
  }
  const agent::Agent& agent(std::size_t i) const { return *agents_[i]; }
  std::size_t size() const { return agents_.size(); }
  FleetTotals totals() const;
  // The first agent's last error that is not empty, for start-up diagnostics.
  std::string last_error() const;

 private:
  std::vector<std::unique_ptr<agent::Agent>> agents_;
};

}  // namespace postwatch::sim
