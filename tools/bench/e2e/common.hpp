// What the parts of postwatch-bench-e2e share: the names they use, and CPU seconds read from /proc.
// CMake passes the catalogue and the agent program (POSTWATCH_BENCH_CATALOGUE, _AGENT_BINARY).
#pragma once

#include "proc_stats.hpp"
#include "run_control.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <map>
#include <string>
#include <utility>

namespace postwatch::bench::e2e {

using namespace std::chrono_literals;
using json = nlohmann::json;
using ojson = nlohmann::ordered_json;
namespace fs = std::filesystem;

inline double cpu_of(const std::string& pid) { return pid.empty() ? 0 : proc_stat(pid).cpu_s; }

// CPU seconds per thread of this process, by tid.
inline std::map<std::string, std::pair<std::string, double>> thread_cpu() {
  std::map<std::string, std::pair<std::string, double>> out;
  for (const auto& entry : fs::directory_iterator("/proc/self/task")) {
    const std::string tid = entry.path().filename().string();
    auto st = proc_stat("self/task/" + tid);
    if (st.ok) out[tid] = {st.comm, st.cpu_s};
  }
  return out;
}

}  // namespace postwatch::bench::e2e
