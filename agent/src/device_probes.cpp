#include "postwatch/agent/device_probes.hpp"

#include "postwatch/agent/clock_watch.hpp"

#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

namespace postwatch::agent {

std::optional<CpuTimes> read_cpu_times(const std::filesystem::path& proc_stat) {
  std::ifstream in(proc_stat);
  std::string label;
  if (!(in >> label) || label != "cpu") return std::nullopt;
  // user nice system idle iowait irq softirq steal (guest time is already in user/nice)
  std::uint64_t v[8] = {};
  int n = 0;
  while (n < 8 && in >> v[n]) ++n;
  if (n < 4) return std::nullopt;
  CpuTimes t;
  for (int i = 0; i < n; ++i) t.total += v[i];
  t.busy = t.total - v[3] - (n > 4 ? v[4] : 0);  // idle and iowait are not busy
  return t;
}

std::optional<double> cpu_busy_percent(const CpuTimes& before, const CpuTimes& after) {
  if (after.total <= before.total || after.busy < before.busy) return std::nullopt;
  double pct = 100.0 * static_cast<double>(after.busy - before.busy) / static_cast<double>(after.total - before.total);
  return std::clamp(pct, 0.0, 100.0);
}

std::optional<double> read_memory_used_percent(const std::filesystem::path& proc_meminfo) {
  std::ifstream in(proc_meminfo);
  std::string key;
  std::uint64_t value = 0, total = 0, available = 0;
  bool has_total = false, has_available = false;
  std::string unit;
  for (std::string line; std::getline(in, line);) {
    std::istringstream ls(line);
    if (!(ls >> key >> value)) continue;
    if (key == "MemTotal:") total = value, has_total = true;
    if (key == "MemAvailable:") available = value, has_available = true;
  }
  if (!has_total || !has_available || total == 0 || available > total) return std::nullopt;
  return 100.0 * static_cast<double>(total - available) / static_cast<double>(total);
}

std::optional<double> disk_free_percent(const std::filesystem::path& dir) {
  struct statvfs st {};
  if (::statvfs(dir.c_str(), &st) != 0 || st.f_blocks == 0) return std::nullopt;
  return std::clamp(100.0 * static_cast<double>(st.f_bavail) / static_cast<double>(st.f_blocks), 0.0, 100.0);
}

std::optional<double> read_host_uptime_s(const std::filesystem::path& proc_uptime) {
  std::ifstream in(proc_uptime);
  double up = 0;
  if (!(in >> up) || up < 0) return std::nullopt;
  return up;
}

std::optional<double> read_clock_error_ms() {
  auto k = read_kernel_clock();
  if (!k) return std::nullopt;
  return static_cast<double>(k->maxerror_us) / 1000.0;
}

UplinkSample measure_uplink(const HostPort& broker, std::chrono::milliseconds timeout,
                            const std::optional<HostPort>& proxy) {
  UplinkSample s;
  const auto start = std::chrono::steady_clock::now();
  if (proxy) {
    s.error = try_proxy_tunnel(*proxy, broker, timeout);
  } else {
    int fd = connect_tcp(broker, timeout, s.error);
    if (fd >= 0) ::close(fd);
  }
  s.reachable = s.error.empty();
  if (s.reachable)
    s.latency_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return s;
}

DeviceProbes::DeviceProbes(ProbesConfig config, std::string broker_uri, std::filesystem::path spool_dir, EventSink sink,
                           std::shared_ptr<spdlog::logger> log, std::string proxy)
    : config_(config),
      broker_uri_(std::move(broker_uri)),
      proxy_(std::move(proxy)),
      spool_dir_(std::move(spool_dir)),
      sink_(std::move(sink)),
      log_(std::move(log)) {}

DeviceProbes::~DeviceProbes() { DeviceProbes::stop(); }

void DeviceProbes::report(const char* indicator, ValueKind kind, double value, std::string note) {
  IndicatorEvent e;
  e.indicator = indicator;
  e.kind = kind;
  e.number = value;
  e.note = std::move(note);
  auto r = sink_(std::move(e));
  if (r.accepted)
    ++accepted_;
  else
    log_->warn("device probe {}: not accepted: {}", indicator, r.error);
}

std::size_t DeviceProbes::collect_once() {
  accepted_ = 0;
  if (config_.cpu) {
    auto now = read_cpu_times();
    if (now && last_cpu_)
      if (auto pct = cpu_busy_percent(*last_cpu_, *now)) report("agent_cpu_percent", ValueKind::Share, *pct);
    last_cpu_ = now;
  }
  if (config_.memory)
    if (auto pct = read_memory_used_percent()) report("agent_memory_percent", ValueKind::Share, *pct);
  if (config_.disk)
    if (auto pct = disk_free_percent(spool_dir_)) report("agent_disk_free_percent", ValueKind::Share, *pct);
  if (config_.uptime)
    if (auto up = read_host_uptime_s()) report("agent_host_uptime_s", ValueKind::Gauge, std::floor(*up));
  if (config_.clock) {
    if (auto err = read_clock_error_ms())
      report("agent_clock_error_ms", ValueKind::Gauge, std::min(*err, 1000000.0));
    else if (!clock_warned_) {
      clock_warned_ = true;  // e.g. systemd's ProtectClock=; once is enough
      log_->warn("device probe clock: adjtimex() refused: {}; agent_clock_error_ms is not reported",
                 std::strerror(errno));
    }
  }
  if (config_.uplink) {
    if (auto hp = broker_host_port(broker_uri_)) {
      // Behind a proxy-only network a direct connect always fails: the probe goes the agent's way.
      auto proxy = effective_proxy(broker_uri_, proxy_);
      auto s = measure_uplink(*hp, config_.uplink_timeout,
                              proxy ? std::optional<HostPort>(proxy->at) : std::optional<HostPort>());
      report("agent_uplink_reachable", ValueKind::Boolean, s.reachable ? 1 : 0, s.error);
      if (s.reachable)
        report("agent_uplink_latency_ms", ValueKind::Gauge, std::min(s.latency_ms, 600000.0),
               proxy ? "time to a tunnel through the proxy" : "TCP connect time");
    }
  }
  return accepted_;
}

void DeviceProbes::start() {
  {
    std::lock_guard lk(mu_);
    stopping_ = false;
  }
  last_cpu_ = read_cpu_times();
  thread_ = std::thread([this] {
    std::unique_lock lk(mu_);
    // The first reading after one second, so the CPU share has an interval to cover.
    auto wait = std::chrono::seconds(std::min<std::int64_t>(1, config_.interval.count()));
    while (!wake_.wait_for(lk, wait, [&] { return stopping_; })) {
      lk.unlock();
      collect_once();
      lk.lock();
      wait = config_.interval;
    }
  });
  log_->info("device probes every {} s", config_.interval.count());
}

void DeviceProbes::stop() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace postwatch::agent
