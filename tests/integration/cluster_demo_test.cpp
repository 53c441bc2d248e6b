// tools/run-cluster-demo, the scale-out demo (tracker issue 24, item 7), run for real: three NATS
// nodes, three aggregator instances, the simulated fleet. One instance is SIGKILLed while the
// fleet publishes, then its NATS node, as the banner tells a user to; the script carries on, the
// survivors take its partitions over, and every event the agents published is confirmed by the
// end.
//
// The script writes $DEMO_LOG_DIR/pids ("<name> <pid>" per process: n1.., agg-1.., sim) before
// its banner; the test takes the instance's PID from there.
#include "support/test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <signal.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>

using namespace postwatch::test;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

const std::filesystem::path kSourceDir = postwatch::test::source_dir();

// The demo script as a child process, stopped (and whatever it started) however the test ends.
class ClusterDemo {
 public:
  ClusterDemo(const TempDir& dir, const std::string& duration)
      : logs_(dir.path() / "logs"),
        out_(dir.path() / "run-cluster-demo.out"),
        proc_({"env", "DEMO_DURATION=" + duration, "DEMO_LOG_DIR=" + logs_.string(), "DEMO_NO_BUILD=1",
               "BUILD_DIR=" + binary_dir().string(), (kSourceDir / "tools" / "run-cluster-demo").string(), "--nodes",
               "3", "--instances", "3", "--quiet"},
              out_) {}
  ~ClusterDemo() {
    if (proc_.running()) {
      proc_.signal(SIGTERM);  // the script stops the simulator, the instances, then the nodes
      proc_.wait(60s);
    }
    for (const auto& [name, pid] : pids())  // a script killed before its cleanup leaves them
      if (started_here(pid)) ::kill(pid, SIGKILL);
  }
  ClusterDemo(const ClusterDemo&) = delete;
  ClusterDemo& operator=(const ClusterDemo&) = delete;

  ChildProcess& process() { return proc_; }
  std::string output() const { return proc_.log(); }
  const std::filesystem::path& logs() const { return logs_; }
  bool printed(const std::string& text) const { return output().find(text) != std::string::npos; }

  std::map<std::string, int> pids() const {
    std::map<std::string, int> m;
    std::ifstream in(logs_ / "pids");
    std::string name;
    int pid = 0;
    while (in >> name >> pid) m[name] = pid;
    return m;
  }
  // Whether `pid` is still one of the demo's processes: the script starts each in its log dir
  // (a PID reused by an unrelated process is not).
  bool started_here(int pid) const {
    std::error_code ec;
    auto cwd = std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/cwd", ec);
    return pid > 0 && !ec && cwd == logs_;
  }
  std::string log(const std::string& name) const {
    std::ifstream in(logs_ / (name + ".log"));
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

 private:
  std::filesystem::path logs_, out_;
  ChildProcess proc_;
};

json cluster_view(unsigned short port) {
  auto r = http_get(port, "/api/v1/cluster");
  return r.status == 200 ? json::parse(r.body, nullptr, false) : json();
}

// The dashboards the banner lists: instance name -> HTTP port.
std::map<std::string, unsigned short> dashboards(const std::string& output) {
  std::map<std::string, unsigned short> m;
  static const std::regex line(R"(http://127\.0\.0\.1:(\d+)/\s+(agg-\d+), publishes via n\d)");
  for (std::sregex_iterator it(output.begin(), output.end(), line), end; it != end; ++it)
    m[(*it)[2]] = static_cast<unsigned short>(std::stoi((*it)[1]));
  return m;
}

// The last lines of each log the demo kept, for a failure's message.
std::string tails(const ClusterDemo& demo) {
  std::string s;
  for (const char* name : {"agg-1", "agg-2", "agg-3", "n1", "sim"}) {
    auto log = demo.log(name);
    s += std::string("--- ") + name + ".log:\n" + log.substr(log.size() > 3000 ? log.size() - 3000 : 0);
  }
  return s;
}

}  // namespace

TEST(ClusterDemo, AnInstanceAndItsNodeKilledMidDemoLoseNothingAndTheDemoEndsCleanly) {
  TempDir dir;
  ClusterDemo demo(dir, "25");
  // Start-up: nodes healthy, agg-1 creating the stream and consumers, the others joining, the
  // fleet connected. About 15 s here; the script itself allows a minute per instance.
  ASSERT_TRUE(
      wait_until([&] { return demo.printed("Simulator progress follows.") || !demo.process().running(); }, 150s))
      << demo.output() << tails(demo);
  ASSERT_TRUE(demo.process().running()) << demo.output() << tails(demo);

  // The banner: three dashboards, the same board on each; the PIDs to kill.
  auto out = demo.output();
  auto boards = dashboards(out);
  ASSERT_EQ(boards.size(), 3u) << out;
  EXPECT_EQ(std::set<unsigned short>({boards["agg-1"], boards["agg-2"], boards["agg-3"]}).size(), 3u) << out;
  EXPECT_NE(out.find("each shows the same board"), std::string::npos) << out;
  auto pids = demo.pids();
  ASSERT_EQ(pids.size(), 7u) << "pids file: " << pids.size() << " entries";
  ASSERT_GT(pids["agg-2"], 0);
  EXPECT_NE(out.find("kill -9 " + std::to_string(pids["agg-2"]) + " "), std::string::npos) << out;
  EXPECT_NE(out.find("kill -9 " + std::to_string(pids["n2"]) + " "), std::string::npos) << out;
  for (const auto& [name, port] : boards)
    EXPECT_EQ(http_get(port, "/readyz").status, 200) << name << " on port " << port;

  // Mid-stream: agg-2 has applied some of the fleet's events, not acknowledged all of them.
  ASSERT_TRUE(wait_until(
      [&] {
        auto c = cluster_view(boards["agg-2"]);
        return c.is_object() && c["counters"]["messages_applied"].get<std::uint64_t>() > 100;
      },
      30s, 100ms))
      << cluster_view(boards["agg-2"]).dump(1) << demo.output();
  ASSERT_EQ(::kill(pids["agg-2"], SIGKILL), 0);
  const std::string exited = "agg-2 (pid " + std::to_string(pids["agg-2"]) + ") exited (killed by SIGKILL)";
  EXPECT_TRUE(wait_until([&] { return demo.printed(exited); }, 20s)) << demo.output();

  // The survivors take its partitions over: all 16 held between them, each once.
  EXPECT_TRUE(wait_until(
      [&] {
        std::multiset<unsigned> held;
        for (const char* name : {"agg-1", "agg-3"}) {
          auto c = cluster_view(boards[name]);
          if (!c.is_object() || c["members"].size() != 2) return false;
          for (const auto& p : c["partitions"]["held"]) held.insert(p.get<unsigned>());
        }
        return held.size() == 16 && std::set<unsigned>(held.begin(), held.end()).size() == 16;
      },
      30s, 200ms))
      << cluster_view(boards["agg-1"]).dump(1) << cluster_view(boards["agg-3"]).dump(1);

  // Then its node, as the banner suggests ("take machine 2 away"): the stream, the buckets and
  // the MQTT sessions carry on with 2 of 3 replicas, and the survivors publish via their own
  // nodes (an instance on n2 would move to the next node in its --broker list).
  ASSERT_GT(pids["n2"], 0);
  ASSERT_EQ(::kill(pids["n2"], SIGKILL), 0);
  const std::string node_exited = "n2 (pid " + std::to_string(pids["n2"]) + ") exited (killed by SIGKILL)";
  EXPECT_TRUE(wait_until([&] { return demo.printed(node_exited); }, 20s)) << demo.output();

  // The simulator ends the demo after 25 s (and its drain); the script stops the rest and exits 0.
  ASSERT_EQ(demo.process().wait(150s), 0) << demo.output() << tails(demo);
  out = demo.output();
  std::smatch m;
  ASSERT_TRUE(std::regex_search(out, m,
                                std::regex(R"(\[sim\] done after [0-9.]+ s: events accepted (\d+) sent (\d+) )"
                                           R"(confirmed (\d+) rejected (\d+)([^\n]*))")))
      << out << tails(demo);
  std::cout << "the simulator's closing line: " << m[0] << std::endl;
  EXPECT_GT(std::stoull(m[1]), 142u * 2 * 10) << m[0];  // 142 agents at 2 events/s, for 25 s
  EXPECT_EQ(m[3].str(), m[1].str()) << m[0] << "\n" << tails(demo);
  EXPECT_EQ(m[4].str(), "0") << m[0];
  EXPECT_EQ(m[5].str().find("never confirmed"), std::string::npos) << m[0] << "\n" << tails(demo);
  EXPECT_NE(out.find("run-cluster-demo: every event accepted was confirmed: done after"), std::string::npos) << out;
  EXPECT_NE(out.find("run-cluster-demo: logs kept in " + demo.logs().string()), std::string::npos) << out;

  // Nothing it started outlives it.
  for (const auto& [name, pid] : demo.pids())
    EXPECT_FALSE(demo.started_here(pid)) << name << " (pid " << pid << ") still runs";
}
