// What the parts of postwatch-bench-agent share: its constants, the events it spools, and CPU
// seconds and spool sizes read from the system.
#pragma once

#include "postwatch/wire_codec.hpp"
#include "proc_stats.hpp"
#include "run_control.hpp"

#include <nlohmann/json.hpp>

#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace postwatch::bench::agent_drain {

using namespace std::chrono_literals;
using ojson = nlohmann::ordered_json;
namespace fs = std::filesystem;

inline constexpr const char* kPost = "bamako";
inline constexpr const char* kAgentId = "bench";
inline constexpr const char* kChildAgentId = "bench-child";
inline constexpr const char* kIndicator = "terrorism_threat_level";
inline constexpr std::int64_t kObservedBase = 1700000000000;
inline constexpr auto kDrainTimeout = 120s;
inline constexpr auto kBaselineTimeout = 60s;
inline constexpr int kBaselineRounds = 3;
inline constexpr auto kIdleWindow = 3s;
inline constexpr auto kFeedWindow = 5s;
inline constexpr int kFeedRate = 100;  // events per second into the child agent

// The benchmark's events: what a post's level source sends, no note, no tags.
inline IndicatorEvent make_event(std::uint64_t i) {
  return IndicatorEvent{0,
                        kObservedBase + static_cast<std::int64_t>(i),
                        kIndicator,
                        ValueKind::Level,
                        static_cast<double>(1 + i % 5),
                        "",
                        "",
                        {}};
}

inline std::string event_line(std::uint64_t i) {
  return nlohmann::json{{"indicator", kIndicator}, {"value", 1 + i % 5}}.dump() + "\n";
}

// ---------------------------------------------------------------- /proc readers

inline double self_cpu_s() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto sec = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return sec(ru.ru_utime) + sec(ru.ru_stime);
}

inline double broker_cpu_s(const std::string& pid) { return pid.empty() ? 0 : proc_stat(pid).cpu_s; }

// CPU seconds per thread of this process, keyed by tid ("name/tid").
inline std::map<std::string, double> thread_cpu() {
  std::map<std::string, double> out;
  for (const auto& entry : fs::directory_iterator("/proc/self/task")) {
    const std::string tid = entry.path().filename().string();
    auto st = proc_stat("self/task/" + tid);
    if (st.ok) out[st.comm + "/" + tid] = st.cpu_s;
  }
  return out;
}

// "name 0.41 s, name 0.20 s, ..." for threads that used at least 10 ms since `before`.
inline std::string thread_cpu_delta(const std::map<std::string, double>& before) {
  std::vector<std::pair<double, std::string>> d;
  for (const auto& [k, v] : thread_cpu()) {
    auto it = before.find(k);
    double used = v - (it == before.end() ? 0 : it->second);
    if (used >= 0.01) d.emplace_back(used, k);
  }
  std::sort(d.rbegin(), d.rend());
  std::string s;
  char buf[32];
  for (const auto& [used, k] : d) {
    std::snprintf(buf, sizeof buf, " %.2f s", used);
    s += (s.empty() ? "" : ", ") + k + buf;
  }
  return s.empty() ? "(none)" : s;
}

inline std::uint64_t dir_bytes(const fs::path& dir, const std::string& ext) {
  std::uint64_t n = 0;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file() && e.path().extension() == ext) n += e.file_size();
  return n;
}

inline std::size_t dir_count(const fs::path& dir, const std::string& ext) {
  std::size_t n = 0;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file() && e.path().extension() == ext) ++n;
  return n;
}

inline double thread_cpu_s() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

}  // namespace postwatch::bench::agent_drain
