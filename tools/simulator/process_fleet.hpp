// The fleet as real postwatch-agent processes, one per simulated agent, each run as
// a post runs it (`postwatch-agent run --config <file> --fifo <path>`, disk spool)
// and fed event lines through its FIFO. What they do is read back from the status
// file each agent writes every second (`postwatch-agent status`).
#pragma once

#include "fleet.hpp"

#include "postwatch/catalogue.hpp"

#include <sys/types.h>

#include <filesystem>
#include <memory>
#include <vector>

namespace spdlog {
class logger;
}

namespace postwatch::sim {

struct ProcessFleetOptions {
  std::filesystem::path agent_binary;
  std::filesystem::path catalogue_file;
  // Each agent's config, FIFO, spool and log go to <work_dir>/<agent id>/. Empty: a fresh
  // temporary directory, removed at the end (a given one is kept, for its logs).
  std::filesystem::path work_dir;
};

class ProcessFleet : public Fleet {
 public:
  // Each agent process holds about 10 MB resident (measured): 200 is already 2 GB.
  static constexpr std::size_t kMaxProcesses = 200;

  ProcessFleet(std::shared_ptr<const IndicatorCatalogue> catalogue, const std::vector<AgentSpec>& agents,
               ProcessFleetOptions options, std::shared_ptr<spdlog::logger> log);
  ~ProcessFleet() override;  // stops children still running (TERM, then KILL)

  void start() override;
  bool wait_connected(std::chrono::milliseconds timeout, const std::atomic<bool>& cancel) override;
  bool drain_and_stop(std::chrono::milliseconds timeout) override;

  agent::SubmitResult submit(std::size_t agent, IndicatorEvent event) override;
  std::size_t size() const override { return children_.size(); }
  const std::string& agent_id(std::size_t agent) const override { return children_[agent].spec.agent_id; }
  std::uint64_t backlog_events(std::size_t agent) const override;
  FleetTotals totals() const override;
  std::string last_error() const override;

  const std::filesystem::path& work_dir() const { return work_dir_; }

 private:
  // What the agent's status file said last.
  struct Status {
    bool fresh = false;  // written by this run's process
    bool connected = false;
    std::uint64_t accepted = 0, sent = 0, confirmed = 0, rejected = 0, spool_events = 0;
    std::int64_t updated_at_ms = 0;
    std::string last_error;
  };
  struct Child {
    AgentSpec spec;
    std::filesystem::path dir, config, fifo, log, status_file;
    pid_t pid = -1;
    int exit_status = -1;  // wait status once reaped
    int fifo_fd = -1;
    std::uint64_t lines_written = 0, lines_refused = 0;
    std::int64_t last_write_ms = 0;
    Status status;
  };

  void prepare(Child& c) const;
  void spawn(Child& c);
  // Re-reads the status files and reaps exited children, at most every `min_age`.
  void refresh(std::chrono::milliseconds min_age = std::chrono::milliseconds(500)) const;
  void stop_children(std::chrono::milliseconds grace);
  std::string describe_exit(const Child& c) const;

  std::shared_ptr<const IndicatorCatalogue> catalogue_;
  ProcessFleetOptions options_;
  std::shared_ptr<spdlog::logger> log_;
  std::filesystem::path work_dir_;
  bool remove_work_dir_ = false;
  mutable std::vector<Child> children_;
  mutable std::chrono::steady_clock::time_point last_refresh_{};
  std::uint64_t invalid_events_ = 0;
  std::string start_error_;
};

}  // namespace postwatch::sim
