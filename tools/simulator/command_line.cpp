#include "command_line.hpp"

#include "postwatch/batch_packing.hpp"
#include "postwatch/catalogue.hpp"
#include "postwatch/command_line_start.hpp"

#include <boost/program_options.hpp>

#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <system_error>

#ifndef POSTWATCH_VERSION
#define POSTWATCH_VERSION "dev"
#endif

namespace postwatch::sim {
namespace po = boost::program_options;
namespace fs = std::filesystem;

fs::path default_scenario_dir() {
  if (fs::is_directory(POSTWATCH_SOURCE_SCENARIO_DIR)) return POSTWATCH_SOURCE_SCENARIO_DIR;
  return POSTWATCH_INSTALLED_SCENARIO_DIR;
}

fs::path default_agent_binary() {
  std::error_code ec;
  auto sibling = fs::read_symlink("/proc/self/exe", ec).parent_path() / "postwatch-agent";
  if (!ec && ::access(sibling.c_str(), X_OK) == 0) return sibling;
  return POSTWATCH_AGENT_BINARY;
}

std::variant<Options, int> parse_options(int argc, char** argv) {
  Options o;
  po::options_description desc(
      "postwatch-sim — simulated posts publishing indicator events through the real agent code\n\noptions");
  desc.add_options()("help,h", "show this help")("version", "print the version")(
      "broker", po::value(&o.broker)->default_value(o.broker),
      "MQTT broker URI; a comma-separated list gives every agent fallbacks (the other nodes of a NATS cluster)")(
      "catalogue", po::value(&o.catalogue)->value_name("FILE"),
      (std::string("indicator catalogue (JSON); default: ") + kDefaultCatalogueHelp).c_str())(
      "scenario", po::value(&o.scenario)->default_value(o.scenario),
      "scenario: a name from --scenario-dir, or a JSON file (docs/simulator.md)")(
      "scenario-dir", po::value(&o.scenario_dir)->default_value(o.scenario_dir), "where scenario names are looked up")(
      "list-scenarios", po::bool_switch(&o.list_scenarios), "list the scenarios in --scenario-dir and exit")(
      "posts", po::value(&o.posts)->default_value(o.posts),
      "number of simulated posts; 0 = every post the scenario allows (by default the whole catalogue). Posts the "
      "scenario's steps name come first, then featured posts such as bamako, kyiv, moscow, the rest drawn by seed")(
      "agents-per-post", po::value(&o.agents_per_post)->default_value(o.agents_per_post),
      "agents at each post, each reporting the post's signals at --rate")(
      "rate", po::value(&o.rate)->default_value(o.rate), "events per second per agent")(
      "duration", po::value(&o.duration_s)->default_value(o.duration_s), "seconds to run; 0 = until SIGINT/SIGTERM")(
      "drain", po::value(&o.drain_s)->default_value(o.drain_s),
      "at the end, seconds to wait for the aggregator to confirm what the agents still hold; what is left is "
      "reported as never confirmed")("seed", po::value(&o.seed)->default_value(o.seed),
                                     "random seed: same seed, same posts and episodes")(
      "quiet", po::bool_switch(&o.quiet), "no per-post lines, episode announcements or agent info logs")(
      "broker-stop-cmd", po::value(&o.broker_stop_cmd),
      "shell command that stops the broker, for broker_outage steps (with --broker-start-cmd); without both, an "
      "outage cuts every agent's uplink instead")("broker-start-cmd", po::value(&o.broker_start_cmd),
                                                  "shell command that starts the broker again")(
      "processes", po::bool_switch(&o.processes),
      "run each agent as its own postwatch-agent process fed through a FIFO (at most 200), instead of in-process")(
      "agent-binary", po::value(&o.agent_binary)->default_value(o.agent_binary), "postwatch-agent, for --processes")(
      "work-dir", po::value(&o.work_dir),
      "--processes: where agent configs, FIFOs, spools and logs go (kept); default a temporary directory, removed")(
      "enrol", po::value(&o.enrol)->value_name("URL"),
      "enrol every agent with the aggregator at URL (http://host:port) before starting, as postwatch-agent enrol "
      "does: the fleet then signs everything it publishes (docs/security.md)")(
      "enrol-token-file", po::value(&o.enrol_token_file)->value_name("FILE"),
      "--enrol: a file (0600) holding an operator token of the aggregator's --tokens-file")(
      "identity-dir", po::value(&o.identity_dir)->value_name("DIR"),
      "--enrol: where each agent's key and the aggregator's key go (kept); default a temporary directory, removed")(
      "compression", po::value(&o.compression)->default_value(o.compression),
      "every agent's uplink.compression: none, zstd or zstd-dictionary (docs/agent.md, \"Thin links\")")(
      "fleet-keys", po::value(&o.fleet_keys)->value_name("FILE"),
      "--processes: every agent takes fleet bundles signed by these keys (fleet.pub) and remote commands, so "
      "rollouts through the aggregator reach the simulated fleet (docs/fleet.md)");
  po::variables_map vm;
  if (auto status =
          start_command_line(argc, argv, desc, "postwatch-sim", std::string("postwatch-sim ") + POSTWATCH_VERSION, vm))
    return *status;
  if (!(o.rate > 0 && o.rate <= 100000) || !(o.duration_s >= 0) || !(o.drain_s >= 0 && o.drain_s <= 86400)) {
    std::cerr << "postwatch-sim: need 0 < --rate <= 100000, --duration >= 0 and 0 <= --drain <= 86400\n";
    return 2;
  }
  if (o.agents_per_post < 1 || o.agents_per_post > kMaxAgentsPerPost) {
    std::cerr << "postwatch-sim: --agents-per-post must be 1 to " << kMaxAgentsPerPost << "\n";
    return 2;
  }
  if (o.broker_stop_cmd.empty() != o.broker_start_cmd.empty()) {
    std::cerr << "postwatch-sim: give both --broker-stop-cmd and --broker-start-cmd, or neither\n";
    return 2;
  }
  if (o.enrol.empty() != o.enrol_token_file.empty()) {
    std::cerr << "postwatch-sim: give both --enrol and --enrol-token-file, or neither\n";
    return 2;
  }
  if (!o.identity_dir.empty() && o.enrol.empty()) {
    std::cerr << "postwatch-sim: --identity-dir is for --enrol\n";
    return 2;
  }
  if (BatchCompression c; !parse_batch_compression(o.compression, c)) {
    std::cerr << "postwatch-sim: --compression must be none, zstd or zstd-dictionary\n";
    return 2;
  }
  if (!o.fleet_keys.empty() && !o.processes) {
    std::cerr << "postwatch-sim: --fleet-keys is for --processes (in-process agents do not take fleet bundles)\n";
    return 2;
  }
  if (!o.fleet_keys.empty() && !std::filesystem::is_regular_file(o.fleet_keys)) {
    std::cerr << "postwatch-sim: --fleet-keys " << o.fleet_keys << ": no such file\n";
    return 2;
  }
  if (!o.work_dir.empty() && !o.processes) {
    std::cerr << "postwatch-sim: --work-dir is for --processes\n";
    return 2;
  }
  return o;
}

}  // namespace postwatch::sim
