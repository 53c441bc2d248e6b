// Built-in device probes: the board's CPU, memory, spool disk, uptime, uplink to the broker and
// clock, reported every `interval` as the agent's own health indicators (docs/agent.md,
// "Device probes"). The readers are free functions over file paths so tests can feed them.
#pragma once

#include "postwatch/agent/agent_config.hpp"
#include "postwatch/agent/broker_route.hpp"
#include "postwatch/agent/event_source.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace spdlog {
class logger;
}

namespace postwatch::agent {

struct CpuTimes {
  std::uint64_t busy = 0, total = 0;  // jiffies since boot
};
std::optional<CpuTimes> read_cpu_times(const std::filesystem::path& proc_stat = "/proc/stat");
// Busy share of the CPU between two samples, 0-100; nullopt when no time passed.
std::optional<double> cpu_busy_percent(const CpuTimes& before, const CpuTimes& after);
// (MemTotal - MemAvailable) / MemTotal, 0-100.
std::optional<double> read_memory_used_percent(const std::filesystem::path& proc_meminfo = "/proc/meminfo");
// Share of the file system holding `dir` still free for unprivileged users, 0-100.
std::optional<double> disk_free_percent(const std::filesystem::path& dir);
std::optional<double> read_host_uptime_s(const std::filesystem::path& proc_uptime = "/proc/uptime");
// The kernel's bound on the clock's error (adjtimex maxerror), ms; nullopt if adjtimex is denied.
std::optional<double> read_clock_error_ms();

struct UplinkSample {
  bool reachable = false;
  double latency_ms = 0;  // TCP connect time, when reachable
  std::string error;
};
// A TCP connect to the broker; through `proxy`, a tunnel the proxy agreed to open (CONNECT 200).
UplinkSample measure_uplink(const HostPort& broker, std::chrono::milliseconds timeout,
                            const std::optional<HostPort>& proxy = std::nullopt);

class DeviceProbes : public EventSource {
 public:
  // `proxy`: uplink.proxy (empty: none configured; the environment's is still used, as Paho does).
  DeviceProbes(ProbesConfig config, std::string broker_uri, std::filesystem::path spool_dir, EventSink sink,
               std::shared_ptr<spdlog::logger> log, std::string proxy = {});
  ~DeviceProbes() override;

  std::string_view name() const override { return "probes"; }
  void start() override;
  void stop() override;

  // Takes every enabled reading and submits it; returns how many events were accepted.
  std::size_t collect_once();

 private:
  void report(const char* indicator, ValueKind kind, double value, std::string note = "");

  ProbesConfig config_;
  std::string broker_uri_;
  std::string proxy_;
  std::filesystem::path spool_dir_;
  EventSink sink_;
  std::shared_ptr<spdlog::logger> log_;
  std::optional<CpuTimes> last_cpu_;
  std::size_t accepted_ = 0;
  bool clock_warned_ = false;
  std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace postwatch::agent
