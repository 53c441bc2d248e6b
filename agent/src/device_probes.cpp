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

std::optional<HostPort> broker_host_port(const std::string& uri) {
  auto scheme_end = uri.find("://");
  if (scheme_end == std::string::npos) return std::nullopt;
  std::string scheme = uri.substr(0, scheme_end);
  std::string rest = uri.substr(scheme_end + 3);
  if (auto slash = rest.find('/'); slash != std::string::npos) rest.resize(slash);
  HostPort hp;
  hp.port = (scheme == "ssl" || scheme == "mqtts") ? 8883 : 1883;
  std::string port;
  if (!rest.empty() && rest[0] == '[') {
    auto close = rest.find(']');
    if (close == std::string::npos) return std::nullopt;
    hp.host = rest.substr(1, close - 1);
    if (close + 1 < rest.size() && rest[close + 1] == ':') port = rest.substr(close + 2);
  } else {
    auto colon = rest.rfind(':');
    hp.host = rest.substr(0, colon);
    if (colon != std::string::npos) port = rest.substr(colon + 1);
  }
  if (!port.empty()) {
    char* end = nullptr;
    long p = std::strtol(port.c_str(), &end, 10);
    if (*end || p < 1 || p > 65535) return std::nullopt;
    hp.port = static_cast<std::uint16_t>(p);
  }
  if (hp.host.empty()) return std::nullopt;
  return hp;
}

UplinkSample measure_uplink(const HostPort& broker, std::chrono::milliseconds timeout) {
  UplinkSample s;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  auto start = std::chrono::steady_clock::now();
  if (int rc = ::getaddrinfo(broker.host.c_str(), std::to_string(broker.port).c_str(), &hints, &res); rc != 0) {
    s.error = "cannot resolve " + broker.host + ": " + ::gai_strerror(rc);
    return s;
  }
  s.error = "no address for " + broker.host;
  for (addrinfo* a = res; a && !s.reachable; a = a->ai_next) {
    int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    int rc = ::connect(fd, a->ai_addr, a->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      auto left =
          timeout - std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
      pollfd p{fd, POLLOUT, 0};
      if (left.count() > 0 && ::poll(&p, 1, static_cast<int>(left.count())) == 1) {
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        rc = err == 0 ? 0 : -1;
        errno = err;
      } else {
        rc = -1;
        errno = ETIMEDOUT;
      }
    }
    if (rc == 0) {
      s.reachable = true;
      s.error.clear();
      s.latency_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    } else {
      s.error = "cannot connect to " + broker.host + ":" + std::to_string(broker.port) + ": " + std::strerror(errno);
    }
    ::close(fd);
  }
  ::freeaddrinfo(res);
  return s;
}

DeviceProbes::DeviceProbes(ProbesConfig config, std::string broker_uri, std::filesystem::path spool_dir, EventSink sink,
                           std::shared_ptr<spdlog::logger> log)
    : config_(config),
      broker_uri_(std::move(broker_uri)),
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
      auto s = measure_uplink(*hp, config_.uplink_timeout);
      report("agent_uplink_reachable", ValueKind::Boolean, s.reachable ? 1 : 0, s.error);
      if (s.reachable)
        report("agent_uplink_latency_ms", ValueKind::Gauge, std::min(s.latency_ms, 600000.0), "TCP connect time");
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
