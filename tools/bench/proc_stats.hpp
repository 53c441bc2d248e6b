// What /proc says about a process: the benches' only way to measure CPU and memory of
// processes they did not write (mosquitto, postwatch-aggregator, collectd).
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

namespace postwatch::bench {

// A "Vm...:  1234 kB" line of /proc/<pid>/status, in KiB; -1 when unreadable.
inline long status_kb(const std::string& pid, const std::string& key) {
  std::ifstream in("/proc/" + pid + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key + ":", 0) == 0) return std::strtol(line.c_str() + key.size() + 1, nullptr, 10);
  return -1;
}

struct ProcStat {
  bool ok = false;
  std::string comm;
  long ppid = 0;
  double cpu_s = 0;  // utime + stime
};

// /proc/<pid>/stat ("self/task/<tid>" works too).
inline ProcStat proc_stat(const std::string& pid) {
  ProcStat s;
  std::ifstream in("/proc/" + pid + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto open = text.find('('), close = text.rfind(')');  // comm may hold spaces and ')'
  if (open == std::string::npos || close == std::string::npos) return s;
  s.comm = text.substr(open + 1, close - open - 1);
  std::istringstream rest(text.substr(close + 1));
  std::vector<std::string> f;  // f[0] is field 3 (state)
  for (std::string w; rest >> w && f.size() < 13;) f.push_back(w);
  if (f.size() < 13) return s;
  const double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
  s.ppid = std::stol(f[1]);
  s.cpu_s = (std::stod(f[11]) + std::stod(f[12])) / tick;  // fields 14 and 15
  s.ok = true;
  return s;
}

// Our own child named `comm` (MosquittoBroker does not expose its pid); "" if none.
inline std::string find_child(const std::string& comm) {
  const long self = ::getpid();
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    auto s = proc_stat(name);
    if (s.ok && s.ppid == self && s.comm == comm) return name;
  }
  return "";
}

}  // namespace postwatch::bench
