// postwatch-agent: the command-line front of the agent library. Each command is a file in this
// folder (agent_commands.hpp); main() picks one and turns what it throws into an exit status.
#include "agent_commands.hpp"

#include "postwatch/agent/event_backlog.hpp"
#include "postwatch/catalogue.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <malloc.h>

#include <atomic>
#include <csignal>
#include <iostream>
#include <sstream>

#ifndef POSTWATCH_VERSION
#define POSTWATCH_VERSION "dev"
#endif

namespace {
std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop = true; }
}  // namespace

int main(int argc, char** argv) {
  using namespace postwatch::agent::cli;
  // One malloc arena, not one per thread that allocates (publisher, input reader, Paho's two,
  // each source): the agent's threads allocate little, and each arena keeps its own pages.
  ::mallopt(M_ARENA_MAX, 1);
  auto log = spdlog::stderr_color_mt("agent");
  log->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%n] %v");
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  try {
    Args args = parse_args(argc, argv);
    if (args.flag("help") || (args.command.empty() && args.opts.empty())) {
      std::cout << kUsage;
      return args.flag("help") ? 0 : 2;
    }
    if (args.flag("version")) {
      std::cout << "postwatch-agent " << POSTWATCH_VERSION << " (wire schema v1)\n";
      return 0;
    }
    if (args.flag("check-config")) return cmd_check_config(args.get("check-config"));
    if (!args.flag("config")) throw std::invalid_argument("--config FILE is required");
    if (args.command == "run") return cmd_run(args, log, g_stop);
    if (args.command == "emit") return cmd_emit(args, log);
    if (args.command == "status") return cmd_status(args);
    if (args.command == "enrol") return cmd_enrol(args, log);
    if (args.command == "rotate-key") return cmd_rotate_key(args, log);
    if (args.command == "send") return cmd_send(args);
    throw std::invalid_argument("unknown command '" + args.command + "'");
  } catch (const std::invalid_argument& e) {
    std::cerr << "postwatch-agent: " << e.what() << "\n(see postwatch-agent --help)\n";
    return 2;
  } catch (const postwatch::agent::ConfigError& e) {
    std::istringstream lines(e.what());  // one line per problem
    for (std::string line; std::getline(lines, line);) std::cerr << "postwatch-agent: config error: " << line << "\n";
    return 2;
  } catch (const postwatch::CatalogueError& e) {
    std::cerr << "postwatch-agent: catalogue error: " << e.what() << "\n";
    return 2;
  } catch (const postwatch::agent::BacklogRefused& e) {
    std::cerr << "postwatch-agent: spool error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "postwatch-agent: " << e.what() << "\n";
    return 1;
  }
}
