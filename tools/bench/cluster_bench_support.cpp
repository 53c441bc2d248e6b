#include "cluster_bench_support.hpp"

#include "proc_stats.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <thread>
#include <utility>

namespace postwatch::bench {

using namespace std::chrono_literals;

void check_stop() {
  if (g_stop) throw std::runtime_error("interrupted");
}
double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}
std::int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}
void pause_for(std::chrono::milliseconds d) {
  const auto until = Clock::now() + d;
  while (Clock::now() < until) {
    check_stop();
    std::this_thread::sleep_for(std::min<Clock::duration>(until - Clock::now(), 50ms));
  }
}

std::string fixed(double v, int precision) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", precision, v);
  return buf;
}

// ---------------------------------------------------------------- /proc readers

double cpu_seconds(const std::string& pid) { return proc_stat(pid).cpu_s; }

double machine_busy_seconds() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  double v[8] = {};  // user nice system idle iowait irq softirq steal
  in >> cpu;
  for (double& x : v) in >> x;
  return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

double rss_mib(const std::string& pid) {
  long kb = status_kb(pid, "VmRSS");
  return kb < 0 ? 0 : static_cast<double>(kb) / 1024;
}

std::string log_tail(const fs::path& file, std::size_t bytes) {
  std::ifstream in(file);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return text.size() > bytes ? "..." + text.substr(text.size() - bytes) : text;
}

std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string load;
  std::getline(in, load);
  return load;
}

std::string process_state(const std::string& pid) {
  const fs::path dir = fs::path("/proc") / pid;
  std::error_code ec;
  const auto exe = fs::read_symlink(dir / "exe", ec);
  std::string state = "State: ?";
  std::ifstream status(dir / "status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("State:", 0) == 0) state = line;
  std::ifstream wchan_in(dir / "wchan");
  std::string wchan;
  std::getline(wchan_in, wchan);
  return "pid " + pid + ": exe " + (ec ? "?" : exe.string()) + ", " + state + ", wchan " +
         (wchan.empty() ? "?" : wchan);
}

// ---------------------------------------------------------------- brokers

namespace {

std::string cmdline(const std::string& pid) {
  std::ifstream in("/proc/" + pid + "/cmdline");
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::replace(s.begin(), s.end(), '\0', ' ');
  return s;
}

// Every child of this process named `comm` (the brokers' classes do not expose their pids).
std::vector<std::string> children_named(const std::string& comm) {
  std::vector<std::string> pids;
  const long self = ::getpid();
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    auto s = proc_stat(name);
    if (s.ok && s.ppid == self && s.comm == comm) pids.push_back(name);
  }
  std::sort(pids.begin(), pids.end());
  return pids;
}

}  // namespace

BrokerSet broker_set(const test::MosquittoBroker& b) {
  auto pids = children_named("mosquitto");
  if (pids.size() != 1) throw std::runtime_error("cannot find the mosquitto child process in /proc");
  return {"mosquitto", {b.uri()}, "", {{"mosquitto", pids[0]}}, ""};
}

BrokerSet broker_set(const test::NatsCluster& n) {
  BrokerSet s{"nats", {}, n.servers(), {}, n.keys_dir()};
  for (int i = 0; i < n.size(); ++i) s.mqtt.push_back(n.mqtt_uri(i));
  for (const auto& pid : children_named("nats-server")) {
    // The node's name is its config file's: .../n2.conf
    auto cmd = cmdline(pid);
    auto at = cmd.rfind(".conf");
    auto from = cmd.rfind('/', at);
    std::string node = at == std::string::npos || from == std::string::npos ? pid : cmd.substr(from + 1, at - from - 1);
    s.procs.push_back({"nats " + node, pid});
  }
  if (static_cast<int>(s.procs.size()) != n.size()) throw std::runtime_error("cannot find the nats-server processes");
  std::sort(s.procs.begin(), s.procs.end(), [](const Proc& a, const Proc& b) { return a.name < b.name; });
  return s;
}

// ---------------------------------------------------------------- aggregator logs

void scan_log(const fs::path& file, LogProblems& out, std::uintmax_t from) {
  std::ifstream in(file);
  in.seekg(static_cast<std::streamoff>(from));
  for (std::string line; std::getline(in, line);) {
    if (line.find("no --tokens-file") != std::string::npos) continue;
    // "2026-12-04T12:00:00.000 warning [postwatch] text"
    auto sp = line.find(' ');
    if (sp == std::string::npos) continue;
    bool warning = line.compare(sp, 9, " warning ") == 0,
         error = line.compare(sp, 7, " error ") == 0 || line.compare(sp, 10, " critical ") == 0;
    if (!warning && !error) continue;
    (warning ? out.warnings : out.errors) += 1;
    std::string text = line.substr(sp + 1);
    std::string folded;
    for (char c : text)
      if (!(std::isdigit(static_cast<unsigned char>(c)) && !folded.empty() && folded.back() == '#'))
        folded += std::isdigit(static_cast<unsigned char>(c)) ? '#' : c;
    if (folded.size() > 200) folded = folded.substr(0, 200) + "...";
    out.by_text[folded] += 1;
  }
}

void print_log_problems(const std::string& what, const LogProblems& p, std::size_t lines) {
  if (p.warnings + p.errors == 0) {
    std::printf("%s: no warning or error in the aggregator logs\n", what.c_str());
    return;
  }
  std::printf("%s: %zu warning and %zu error line(s) in the aggregator logs:\n", what.c_str(), p.warnings, p.errors);
  std::vector<std::pair<std::size_t, std::string>> top;
  for (const auto& [text, n] : p.by_text) top.emplace_back(n, text);
  std::sort(top.rbegin(), top.rend());
  for (std::size_t i = 0; i < top.size() && i < lines; ++i)
    std::printf("  %5zu x %s\n", top[i].first, top[i].second.c_str());
  if (top.size() > lines) std::printf("  ... and %zu other message(s)\n", top.size() - lines);
}

}  // namespace postwatch::bench
