// postwatch-sim's command line: its options, read and checked (docs/simulator.md, "Running it").
#pragma once

#include "postwatch/catalogue.hpp"

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <variant>

namespace postwatch::sim {

constexpr std::size_t kMaxAgentsPerPost = 20;

// Shipped scenarios: the source tree's when this binary runs from a build tree, else the installed ones.
std::filesystem::path default_scenario_dir();
// postwatch-agent next to this binary (installed), else the one built with it.
std::filesystem::path default_agent_binary();

struct Options {
  std::string broker = "tcp://127.0.0.1:1883";
  std::string catalogue = default_catalogue_path().string();
  std::string scenario = "baseline";
  std::string scenario_dir = default_scenario_dir().string();
  bool list_scenarios = false;
  std::size_t posts = 0;  // 0: every post the scenario allows
  std::size_t agents_per_post = 1;
  double rate = 2;
  double duration_s = 0;
  // A confirmation takes about a second (the aggregator confirms what its store committed, every
  // --confirm-interval-ms); 10 s covers a loaded machine.
  double drain_s = 10;
  std::uint64_t seed = 1;
  bool quiet = false;
  std::string broker_stop_cmd, broker_start_cmd;
  bool processes = false;
  std::string agent_binary = default_agent_binary().string();
  std::string work_dir;
  std::string enrol;  // the aggregator's http://host:port: enrol every agent first (signed fleet)
  std::string enrol_token_file;
  std::string identity_dir;
  std::string compression = "none";
  std::string fleet_keys;  // --processes: each agent takes fleet bundles signed with these keys
};

// The options, or the exit code when the program should end right away (--help, --version, a
// mistake).
std::variant<Options, int> parse_options(int argc, char** argv);

}  // namespace postwatch::sim
