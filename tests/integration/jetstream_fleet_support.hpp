// The simulated fleet in the tests of a cluster on NATS JetStream: how it is run, how its
// closing line is read, and what a failure prints (the simulator's own lines, the agents'
// warnings counted by kind, each instance's and each NATS node's warnings).
#pragma once

#include "support/test_support.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace postwatch::test {

inline std::string sim_binary() { return (binary_dir() / "tools" / "simulator" / "postwatch-sim").string(); }

// A sanitizer build runs several times slower (the lease there: jetstream_test_support.hpp).
// The fleet sends half the rate there, and the simulator's drain (how long it waits for the
// last confirmations) is longer: in a CI run under ASan the cluster fell behind the offered
// load, every agent of a node then reconnected as a killed node came back, and the backlog
// took longer than 60 s to be confirmed. A run that passes ends its drain early.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr const char* kDrainS = "150";
inline constexpr const char* kRate = "1";  // a CI run applied 200/s, then 100/s of the 284/s offered
#else
inline constexpr const char* kDrainS = "60";
inline constexpr const char* kRate = "2";
#endif
inline constexpr auto kSimWait = std::chrono::seconds(200);

// The default fleet (142 agents, delivery confirmation) for `seconds` through `broker`.
inline std::vector<std::string> fleet(const std::string& broker, const char* seconds) {
  return {sim_binary(), "--broker", broker, "--duration", seconds, "--rate", kRate, "--drain", kDrainS, "--quiet"};
}

struct SimTotals {
  std::uint64_t accepted = 0, confirmed = 0;
  std::string rest;
};
inline ::testing::AssertionResult parse_sim(const std::string& log, SimTotals& t) {
  std::smatch m;
  if (!std::regex_search(log, m,
                         std::regex(R"(done after [0-9.]+ s: events accepted (\d+) sent \d+ confirmed (\d+) )"
                                    R"(rejected \d+(.*))")))
    return ::testing::AssertionFailure() << "no closing line in:\n" << log;
  t = {std::stoull(m[1]), std::stoull(m[2]), m[3]};
  return ::testing::AssertionSuccess();
}

// For a failure message: the simulator's own lines, and its agents' warnings counted by kind
// (a whole fleet's log buries the closing line; a CI excerpt showed only lost connections).
inline std::string sim_summary(const std::string& log) {
  std::istringstream in(log);
  std::string line, out;
  std::map<std::string, std::size_t> agent_warnings;
  const std::regex agent_tag(R"( \[sim-[0-9]+/[^\]]+\] )");
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_search(line, m, agent_tag))
      ++agent_warnings[line.substr(static_cast<std::size_t>(m.position(0)) + m.length(0))];
    else
      out += line + "\n";
  }
  for (const auto& [what, n] : agent_warnings) out += "  agents, " + std::to_string(n) + "x: " + what + "\n";
  return out;
}

// The lines of `log` holding any of `markers`, at most 40 and how many more.
inline std::string lines_with(const std::string& log, std::initializer_list<const char*> markers) {
  std::istringstream in(log);
  std::string line, out;
  std::size_t n = 0;
  while (std::getline(in, line))
    if (std::any_of(markers.begin(), markers.end(), [&](const char* m) { return line.find(m) != std::string::npos; }) &&
        ++n <= 40)
      out += line + "\n";
  return out + (n > 40 ? "... " + std::to_string(n - 40) + " more\n" : "");
}

// On failure: an instance's warnings and errors.
inline std::string warnings(const std::string& log) { return lines_with(log, {" warning ", " error "}); }

// A NATS node's warnings and errors: why it dropped clients, lost a quorum or an election.
inline std::string nats_warnings(const std::string& log) { return lines_with(log, {"[WRN]", "[ERR]"}); }

}  // namespace postwatch::test
