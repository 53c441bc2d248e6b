// postwatch-agent's commands, one file each in this folder; main.cpp picks one from the command
// line. Each returns the process's exit status (kUsage lists them) or throws: main() turns
// std::invalid_argument and ConfigError into 2, other exceptions into 1.
#pragma once

#include "postwatch/agent/fleet_bundles.hpp"

#include <atomic>
#include <map>
#include <memory>
#include <string>

namespace spdlog {
class logger;
}

namespace postwatch::agent::cli {

extern const char* const kUsage;  // --help

struct Args {
  std::string command;
  std::string positional;  // `send`'s JSON
  std::map<std::string, std::string> opts;
  bool flag(const std::string& k) const { return opts.count(k) > 0; }
  std::string get(const std::string& k, const std::string& def = "") const {
    auto it = opts.find(k);
    return it == opts.end() ? def : it->second;
  }
};

// Throws std::invalid_argument for an option without its value or an argument out of place.
Args parse_args(int argc, char** argv);

using Loaded = LoadedConfig;

// Everything --check-config checks; refuses on any error (ConfigError), logs warnings (the agent
// still runs: e.g. a certificate not yet valid because the clock is not set yet).
Loaded load_config(const std::string& file, spdlog::logger* log);

int cmd_check_config(const std::string& file);
int cmd_status(const Args& args);
int cmd_send(const Args& args);
// Runs until `stop` (SIGINT/SIGTERM) or, with --exit-on-eof or --input FILE, the input's end.
int cmd_run(const Args& args, const std::shared_ptr<spdlog::logger>& log, const std::atomic<bool>& stop);
int cmd_emit(const Args& args, const std::shared_ptr<spdlog::logger>& log);
int cmd_enrol(const Args& args, const std::shared_ptr<spdlog::logger>& log);
int cmd_rotate_key(const Args& args, const std::shared_ptr<spdlog::logger>& log);

}  // namespace postwatch::agent::cli
