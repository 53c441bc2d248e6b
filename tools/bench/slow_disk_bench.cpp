// postwatch-bench-slow-disk: what a slow disk does to the agent's sources (issue 18, "submit()
// must not wait for the disk"). An agent with a disk spool (interval fsync, the default) and no
// broker; four source threads submit as fast as they can for --seconds while every fdatasync of
// the spool takes an extra --delays milliseconds (a worn SD card, a congested eMMC). Prints the
// events accepted per second and the submit() latency (p50, p99, max) for each delay, next to a
// baseline without delay measured in the same run. Never asserts timing.
#include "postwatch/agent/agent.hpp"
#include "postwatch/agent/spool_store.hpp"
#include "postwatch/catalogue.hpp"
#include "support/test_support.hpp"

#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

using namespace postwatch;
using namespace postwatch::agent;
using Clock = std::chrono::steady_clock;

namespace {

struct Run {
  double events_per_s = 0;
  double p50_ms = 0, p99_ms = 0, max_ms = 0;
  std::uint64_t syncs = 0;
};

Run run_with_delay(const std::shared_ptr<const IndicatorCatalogue>& catalogue, std::chrono::milliseconds delay,
                   double seconds) {
  test::TempDir dir;
  std::atomic<std::uint64_t> syncs{0};
  SpoolOptions opt{.dir = dir.path() / "spool", .max_bytes = 2ull << 30};
  opt.datasync = [&](int fd) {
    syncs.fetch_add(1);
    if (delay.count() > 0) std::this_thread::sleep_for(delay);
    return ::fdatasync(fd);
  };
  auto log = std::make_shared<spdlog::logger>("bench", std::make_shared<spdlog::sinks::null_sink_mt>());
  AgentConfig cfg;
  cfg.agent_id = "bench-1";
  cfg.post_id = "bamako";
  cfg.broker_uri = "tcp://127.0.0.1:1";  // no broker: the spool only fills, the upkeep runs
  cfg.allow_plaintext = true;
  Agent agent(cfg, catalogue, std::make_unique<SpoolStore>(std::move(opt), log), log);
  agent.start();

  constexpr int kSources = 4;
  std::atomic<bool> stop{false};
  std::vector<std::vector<double>> latencies(kSources);
  std::vector<std::thread> sources;
  const auto started = Clock::now();
  for (int s = 0; s < kSources; ++s)
    sources.emplace_back([&, s] {
      IndicatorEvent e{0, 0, "terrorism_threat_level", ValueKind::Level, 2, "", "", {}};
      auto& mine = latencies[s];
      mine.reserve(1 << 20);
      while (!stop.load(std::memory_order_relaxed)) {
        const auto t0 = Clock::now();
        e.observed_at_ms = 0;
        agent.submit(e);
        mine.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      }
    });
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : sources) t.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - started).count();
  Run r;
  r.events_per_s = static_cast<double>(agent.stats().accepted) / elapsed;
  std::vector<double> all;
  for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  if (!all.empty()) {
    r.p50_ms = all[all.size() / 2];
    r.p99_ms = all[all.size() * 99 / 100];
    r.max_ms = all.back();
  }
  r.syncs = syncs.load();
  agent.stop();
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 3;
  std::vector<int> delays = {20, 100, 500};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--seconds" && i + 1 < argc) {
      seconds = std::stod(argv[++i]);
    } else if (a == "--delays" && i + 1 < argc) {
      delays.clear();
      std::string list = argv[++i];
      for (std::size_t at = 0; at < list.size();) {
        auto comma = list.find(',', at);
        delays.push_back(std::stoi(list.substr(at, comma - at)));
        at = comma == std::string::npos ? list.size() : comma + 1;
      }
    } else {
      std::cerr << "usage: postwatch-bench-slow-disk [--seconds S] [--delays MS,MS,...]\n";
      return a == "--help" || a == "-h" ? 0 : 2;
    }
  }
  auto catalogue = std::make_shared<const IndicatorCatalogue>(IndicatorCatalogue::load(test::catalogue_path()));
  std::printf("agent with a disk spool (interval fsync), 4 sources submitting for %.1f s each run, no broker\n",
              seconds);
  const Run base = run_with_delay(catalogue, std::chrono::milliseconds(0), seconds);
  auto print = [&](const char* label, const Run& r) {
    std::printf(
        "  %-28s %12.0f events/s (%.2f of baseline)  submit p50 %.4f ms  p99 %.4f ms  max %8.2f ms  %llu syncs\n",
        label, r.events_per_s, base.events_per_s > 0 ? r.events_per_s / base.events_per_s : 0, r.p50_ms, r.p99_ms,
        r.max_ms, static_cast<unsigned long long>(r.syncs));
  };
  print("baseline (fdatasync as is)", base);
  for (int d : delays) {
    const std::string label = "fdatasync +" + std::to_string(d) + " ms";
    print(label.c_str(), run_with_delay(catalogue, std::chrono::milliseconds(d), seconds));
  }
  return 0;
}
