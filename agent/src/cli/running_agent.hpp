// The agent and the inputs one config makes, as `run` starts, swaps and stops them; and the
// bare agent (no inputs) `emit` makes.
#pragma once

#include "agent_commands.hpp"
#include "status_file.hpp"

#include "postwatch/agent/agent.hpp"
#include "postwatch/agent/event_source.hpp"
#include "postwatch/agent/remote_commands.hpp"

#include <memory>
#include <string>
#include <vector>

namespace postwatch::agent::cli {

// An agent over a spool in the config's spool directory; not started.
std::unique_ptr<Agent> make_agent(const Loaded& l, std::shared_ptr<spdlog::logger> log);

// The agent and its inputs as one config makes them; replaced whole when a fleet bundle goes
// on trial or is rolled back.
struct RunningAgent {
  Loaded loaded;
  std::unique_ptr<Agent> agent;
  std::vector<std::unique_ptr<EventSource>> sources;

  std::vector<std::string> input_problems() const {
    std::vector<std::string> out;
    for (const auto& s : sources)
      if (auto p = s->problem(); !p.empty())
        out.push_back(std::move(p));
      else if (!s->has_result())
        out.push_back(std::string(s->name()) + " input: no result yet (its first run has not ended)");
    return out;
  }
};

// The agent and its inputs, started; with `fleet`, subscribed to its bundle topics (and to its
// command topic with `commands`).
std::unique_ptr<RunningAgent> start_agent(Loaded loaded, FleetBundles* fleet, RemoteCommands* commands,
                                          const std::shared_ptr<spdlog::logger>& log);
void stop_agent(RunningAgent& run);

// Remote commands (docs/fleet.md, "Remote commands"), each answered on the agent's result topic.
void run_commands(RemoteCommands& commands, RunningAgent& run, const FleetBundles* fleet, const EarlierCounts& earlier,
                  spdlog::logger& log);

}  // namespace postwatch::agent::cli
