// A run of postwatch-sim once its options are read: --list-scenarios lists the scenarios;
// otherwise the fleet is built and connected, plays the scenario's timeline, and is drained.
#pragma once

#include "command_line.hpp"

#include <spdlog/spdlog.h>

#include <atomic>
#include <memory>

namespace postwatch::sim {

// Until o.duration_s is up or `stop` is set (SIGINT, SIGTERM); the exit code. Every agent
// logs to `sink`, as `log` does.
int run_simulator(const Options& o, const std::shared_ptr<spdlog::sinks::sink>& sink,
                  const std::shared_ptr<spdlog::logger>& log, const std::atomic<bool>& stop);

}  // namespace postwatch::sim
