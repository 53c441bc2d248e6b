// postwatch-sim: a fleet of simulated posts, each publishing indicator events
// through the real agent code, so the aggregator's goal board has a world to show;
// a named scenario (tools/simulator/scenarios/, docs/simulator.md) says what happens.
// Its options are read in command_line.cpp; simulator_run.cpp runs it.
#include "command_line.hpp"
#include "simulator_run.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <sys/resource.h>

#include <atomic>
#include <csignal>
#include <variant>

namespace {

std::atomic<bool> g_stop{false};
static_assert(std::atomic<bool>::is_always_lock_free, "set from a signal handler");
void on_signal(int) { g_stop = true; }

void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

// Every agent holds a socket, and through the relay three: lift the soft limit as far as allowed.
void raise_open_file_limit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
}

}  // namespace

int main(int argc, char** argv) {
  using namespace postwatch::sim;
  auto parsed = parse_options(argc, argv);
  if (auto* code = std::get_if<int>(&parsed)) return *code;
  const Options& o = std::get<Options>(parsed);

  install_signal_handlers();
  std::signal(SIGPIPE, SIG_IGN);  // a relayed or piped peer that went away is an error code, not our end
  raise_open_file_limit();
  // One sink for the simulator's and every agent's logger, so lines never interleave.
  auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  sink->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%n] %v");
  auto log = std::make_shared<spdlog::logger>("sim", sink);
  return run_simulator(o, sink, log, g_stop);
}
