// The agents half of postwatch-bench-fleet (README.md): N real agents in this process, events at
// a given rate, what each agent was confirmed and when.
#include "bench_events.hpp"
#include "fleet_bench.hpp"
#include "postwatch/agent/agent.hpp"
#include "postwatch/agent/memory_backlog.hpp"
#include "postwatch/catalogue.hpp"
#include "proc_stats.hpp"
#include "support/test_support.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <deque>
#include <fstream>
#include <iostream>
#include <thread>

namespace postwatch::bench::fleet {
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using json = nlohmann::json;
namespace fs = std::filesystem;

void raise_file_limit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
}

std::string arg(int argc, char** argv, const std::string& name, const std::string& dflt) {
  for (int i = 1; i + 1 < argc; ++i)
    if (argv[i] == name) return argv[i + 1];
  return dflt;
}
bool flag(int argc, char** argv, const std::string& name) {
  for (int i = 1; i < argc; ++i)
    if (argv[i] == name) return true;
  return false;
}

namespace {

struct Pending {
  std::uint64_t seq;
  Clock::time_point at;
};

}  // namespace

int agents_main(int argc, char** argv) {
  raise_file_limit();
  // In production the agents run at the posts, not on the aggregator's machine. Here they
  // share its two cores, so they yield to the broker and the aggregator (nice 19): otherwise
  // thousands of agent threads starve those two processes and the figures measure the harness.
  errno = 0;
  if (::nice(19) == -1 && errno != 0) std::cerr << "agents: cannot lower priority\n";
  const std::string broker = arg(argc, argv, "--broker", ""), dir = arg(argc, argv, "--dir", "");
  const std::size_t first = std::stoul(arg(argc, argv, "--first", "0"));
  const std::size_t count = std::stoul(arg(argc, argv, "--count", "1"));
  const double rate = std::stod(arg(argc, argv, "--rate", "100"));
  const double seconds = std::stod(arg(argc, argv, "--seconds", "30"));
  const double drain_s = std::stod(arg(argc, argv, "--drain", "10"));
  const std::string index = arg(argc, argv, "--index", "0");
  auto catalogue = std::make_shared<const IndicatorCatalogue>(IndicatorCatalogue::load(test::catalogue_path()));
  bench::EventMaker maker(*catalogue);

  auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  std::vector<std::unique_ptr<agent::Agent>> agents;
  for (std::size_t i = first; i < first + count; ++i) {
    agent::AgentConfig c;
    c.broker_uri = broker;
    c.agent_id = "fleet-" + std::to_string(i);
    c.post_id = catalogue->posts()[i % catalogue->posts().size()].id;
    c.allow_plaintext = true;
    c.catalogue_file = test::catalogue_path();
    c.batch_max_delay = 100ms;  // as the simulator: the board moves within a tick or two
    c.queue_max_events = 200'000;
    auto log = std::make_shared<spdlog::logger>(c.agent_id, sink);
    log->set_level(spdlog::level::warn);
    agents.push_back(
        std::make_unique<agent::Agent>(std::move(c), catalogue, std::make_unique<agent::MemoryBacklog>(200'000), log));
  }
  for (auto& a : agents) a->start();
  const auto connect_deadline = Clock::now() + 300s;
  for (auto& a : agents)
    while (!a->wait_until_connected(100ms))
      if (Clock::now() > connect_deadline) {
        std::cerr << "agents " << index << ": not all connected within 300 s\n";
        std::_Exit(3);
      }
  std::ofstream(fs::path(dir) / ("agents-" + index + ".ready")) << "ready\n";
  std::string go;
  if (!std::getline(std::cin, go)) std::_Exit(4);

  // Emit at `rate` round-robin over the agents; every 100 ms, see what was confirmed.
  std::vector<std::deque<Pending>> pending(agents.size());
  std::vector<double> latency_ms;
  std::uint64_t emitted = 0, accepted = 0, rejected = 0;
  const auto sweep = [&] {
    const auto now = Clock::now();
    for (std::size_t i = 0; i < agents.size(); ++i) {
      if (pending[i].empty()) continue;
      const auto through = agents[i]->stats().confirmed_through_seq;
      while (!pending[i].empty() && pending[i].front().seq <= through) {
        latency_ms.push_back(std::chrono::duration<double, std::milli>(now - pending[i].front().at).count());
        pending[i].pop_front();
      }
    }
  };
  const auto start = Clock::now();
  auto next_sweep = start;
  for (;;) {
    const auto now = Clock::now();
    const double elapsed = std::chrono::duration<double>(now - start).count();
    if (elapsed >= seconds) break;
    const auto target = static_cast<std::uint64_t>(rate * elapsed);
    for (; emitted < target; ++emitted) {
      const std::size_t i = emitted % agents.size();
      auto r = agents[i]->submit(maker.make(emitted, 0, 0));
      if (!r.accepted) {
        ++rejected;
        continue;
      }
      ++accepted;
      pending[i].push_back({r.seq, Clock::now()});
    }
    if (now >= next_sweep) {
      sweep();
      next_sweep = now + 100ms;
    }
    std::this_thread::sleep_for(5ms);
  }
  const auto drain_deadline = Clock::now() + std::chrono::duration<double>(drain_s);
  while (Clock::now() < drain_deadline &&
         std::any_of(pending.begin(), pending.end(), [](const auto& d) { return !d.empty(); })) {
    std::this_thread::sleep_for(100ms);
    sweep();
  }
  // The last confirmations are applied by each agent's own thread: wait for its backlog too.
  for (auto& a : agents) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(drain_deadline - Clock::now());
    a->wait_until_drained(std::max(left, std::chrono::milliseconds(1)));
  }
  json out;
  std::uint64_t confirmed = 0, backlog = 0, resend_requests = 0;
  for (auto& a : agents) {
    auto s = a->stats();
    confirmed += s.confirmed;
    backlog += s.backlog.events;
    resend_requests += s.resend_requests;
  }
  out["accepted"] = accepted;
  out["rejected"] = rejected;
  out["confirmed"] = confirmed;
  out["backlog"] = backlog;
  out["resend_requests"] = resend_requests;
  out["rss_kib"] = bench::status_kb("self", "VmRSS");
  out["latency_ms"] = latency_ms;
  {
    std::ofstream f(fs::path(dir) / ("agents-" + index + ".json.tmp"));
    f << out.dump();
  }
  fs::rename(fs::path(dir) / ("agents-" + index + ".json.tmp"), fs::path(dir) / ("agents-" + index + ".json"));
  // Disconnecting takes a round trip per agent: the parent does not wait for it.
  std::_Exit(0);
}

}  // namespace postwatch::bench::fleet
