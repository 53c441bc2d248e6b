// The agent's side of remote commands (docs/fleet.md, "Remote commands"): the retained list on
// its own command topic arrives on Paho's thread (offer), the main loop takes the commands it
// has not run yet (take) and answers each on its result topic. Which ids it ran is kept in
// <fleet.state_dir>/commands.json, written before the command runs: the list comes back with
// every connection and after a restart, and a command runs at most once.
#pragma once

#include "postwatch/agent/event_source.hpp"
#include "postwatch/fleet_command.hpp"

#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace spdlog {
class logger;
}

namespace postwatch::agent {

class RemoteCommands {
 public:
  RemoteCommands(std::filesystem::path state_dir, std::shared_ptr<spdlog::logger> log);

  // Paho's thread: keeps the newest list; an empty payload (no commands pending) clears it.
  void offer(std::string payload);
  // The main loop: commands of the newest list not run before, in order, each returned once.
  std::vector<FleetCommand> take();

 private:
  void save() const;

  std::filesystem::path file_;
  std::shared_ptr<spdlog::logger> log_;
  std::mutex mu_;
  std::optional<std::string> newest_;  // guarded by mu_
  std::set<std::string> ran_;          // main loop only: ids run that are still listed
};

class Agent;

// Runs one command on the running agent and says how it went. run-probe runs the script probe
// for that indicator now, here (up to its timeout); report-status answers `status_json()`.
FleetCommandResult run_fleet_command(const FleetCommand& command, Agent& agent,
                                     const std::vector<std::unique_ptr<EventSource>>& sources,
                                     const std::function<std::string()>& status_json);

}  // namespace postwatch::agent
