// Phase 4 (scaling with distinct agents), the machine's properties, and the run of every phase.
#include "e2e/phases.hpp"

#include "bench_events.hpp"
#include "postwatch/clock.hpp"

#include <mqtt/async_client.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <malloc.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <thread>

namespace postwatch::bench::e2e {

// 4. Scaling: distinct agent ids over the 142 posts, few connections, fresh aggregator.
void phase_scaling(Context& c) {
  std::cerr << "scaling: 10 .. 10000 agents, batch " << kScalingBatch << "\n";
  ::malloc_trim(0);
  std::ofstream("/proc/self/clear_refs") << "5\n";  // resets VmHWM to the current VmRSS
  const double rss_before = static_cast<double>(status_kb("self", "VmRSS"));
  auto agg =
      std::make_unique<InProcessAggregator>(c.broker->uri(), c.work.path() / "aggregator-scaling", c.catalogue, c.log);
  ::malloc_trim(0);
  const double rss_empty = static_cast<double>(status_kb("self", "VmRSS"));
  c.report.section("scaling", "4. scaling: distinct agent ids over the posts, batch " + std::to_string(kScalingBatch) +
                                  ", " + std::to_string(c.opt.connections) + " connections, fresh aggregator");
  c.report.add("rss_before_kib", "bench process VmRSS before the aggregator", rss_before, "KiB");
  c.report.add("rss_empty_kib", "VmRSS with the aggregator started, no agents", rss_empty, "KiB");
  const double guess =
      c.ceiling_events_per_s.count(kScalingBatch) ? 0.8 * c.ceiling_events_per_s[kScalingBatch] : 100000;
  std::uint64_t seq_start = 1;
  double prev_rss = rss_empty;
  std::size_t prev_agents = 0;
  const std::string tag = c.tag("s");
  for (std::size_t agents : kScalingAgents) {
    const std::size_t m = messages_for(guess, c.opt.seconds, kScalingBatch, agents);
    auto r = run_through_aggregator(
        c, *agg,
        {{"batch", kScalingBatch}, {"agents", agents}, {"messages", m}, {"tag", tag}, {"seq_start", seq_start}},
        m * kScalingBatch);
    seq_start += (m / agents) * kScalingBatch;
    const double rate = static_cast<double>(r.events) / r.seconds;
    const double hwm = static_cast<double>(status_kb("self", "VmHWM"));
    ::malloc_trim(0);  // what stays is what the aggregator holds, not freed queues
    const double rss = static_cast<double>(status_kb("self", "VmRSS"));
    const Stats s = agg->stats();
    const auto k = "a" + std::to_string(agents);
    const std::string l = std::to_string(agents) + " agents: ";
    std::cerr << "  " << agents << " agents: " << r.events << " events in " << r.seconds << " s, VmRSS " << rss
              << " KiB\n";
    c.report.add(k + "_events_per_s", l + "events applied/s", rate, "events/s");
    c.report.add(k + "_messages_per_agent", l + "messages per agent", static_cast<double>(m / agents), "");
    c.report.add(k + "_agents_tracked", l + "agents in /api/v1/stats", static_cast<double>(s.agents), "");
    c.report.add(k + "_vm_rss_kib", l + "bench process VmRSS after the run (aggregator + harness)", rss, "KiB");
    c.report.add(k + "_vm_hwm_kib", l + "VmHWM (peak) since the scaling phase began", hwm, "KiB");
    if (agents >= 1000)
      c.report.add(k + "_rss_per_new_agent_bytes", l + "VmRSS growth per added agent",
                   1024 * (rss - prev_rss) / static_cast<double>(agents - prev_agents), "bytes");
    c.report.add(k + "_stats_ms", l + "GET /api/v1/stats (on the io thread)", s.request_ms, "ms", 1);
    c.report.add(k + "_stats_bytes", l + "/api/v1/stats body", static_cast<double>(s.body_bytes), "bytes");
    report_cpu(c, k, l, r);
    if (r.duplicates || r.gaps || r.rejected || r.events != m * kScalingBatch)
      c.report.text(k + "_anomalies", l + "ANOMALIES",
                    "applied " + std::to_string(r.events) + " of " + std::to_string(m * kScalingBatch) +
                        ", duplicates " + std::to_string(r.duplicates) + ", gaps " + std::to_string(r.gaps));
    prev_rss = rss;
    prev_agents = agents;
  }
  agg.reset();
}

// Two properties of the machine that several figures here hinge on: what a first touch of
// fresh memory costs (page faults; large on some VMs) and what a small fdatasync costs.
void phase_machine(Context& c) {
  const std::size_t bytes = 64u << 20;
  double us_per_page = 0;
  for (int round = 0; round < 2; ++round) {  // the second round, after the allocator warmed up
    auto* p = static_cast<char*>(::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (p == MAP_FAILED) return;
    auto t0 = Clock::now();
    for (std::size_t i = 0; i < bytes; i += 4096) p[i] = 1;
    us_per_page = 1e6 * seconds_since(t0) / static_cast<double>(bytes / 4096);
    ::munmap(p, bytes);
  }
  const auto file = c.work.path() / "fsync-probe";
  int fd = ::open(file.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0600);
  double fsync_ms = NAN;
  if (fd >= 0) {
    char block[4096] = {};
    constexpr int kSyncs = 50;
    auto t0 = Clock::now();
    for (int i = 0; i < kSyncs; ++i)
      if (::write(fd, block, sizeof block) != sizeof block || ::fdatasync(fd) != 0) break;
    fsync_ms = 1000 * seconds_since(t0) / kSyncs;
    ::close(fd);
  }
  c.report.section("machine", "0. machine");
  c.report.add("page_fault_us", "first touch of fresh memory", us_per_page, "us per 4 KiB page", 2);
  c.report.add("fdatasync_ms", "4 KiB write + fdatasync in the temp dir", fsync_ms, "ms", 2);
  c.report.add(
      "loadavg_1m", "load average (1 min) at start",
      [] {
        double l = NAN;
        std::ifstream("/proc/loadavg") >> l;
        return l;
      }(),
      "", 2);
}

int run(const Options& opt) {
  const auto started = Clock::now();
  Context c;
  c.opt = opt;
  c.report.config("seconds_per_run", opt.seconds);
  c.report.config("connections", opt.connections);
  c.report.config("inflight_per_connection", opt.inflight);
  c.report.config("agents", kAgents);
  c.report.config("cpus", std::thread::hardware_concurrency());
  c.report.config("started_at_ms", now_utc_ms());

  phase_machine(c);
  std::cerr << "starting mosquitto and the publisher process...\n";
  c.broker = std::make_unique<test::MosquittoBroker>("", /*persistent=*/false);
  c.broker_pid = find_child("mosquitto");
  c.pub = std::make_unique<Publisher>(c.broker->uri(), c.work.path() / "publisher", opt.connections, opt.inflight);
  // A connected client that does nothing keeps Paho's library threads running from here
  // on, so each aggregator's new threads are its own (CPU by thread, below).
  mqtt::async_client keeper(c.broker->uri(), "pw-bench-keeper");
  keeper.connect(mqtt::connect_options_builder().clean_session(true).finalize())->wait();

  if (opt.phases.count("ceiling")) phase_ceiling(c);
  // Scaling first: its memory figures then start from a process that has not yet held
  // an aggregator (the e2e runs leave heap behind that no trim gives back).
  if (opt.phases.count("scaling")) phase_scaling(c);
  if (opt.phases.count("e2e") || opt.phases.count("signed") || opt.phases.count("latency")) {
    std::cerr << "starting the in-process aggregator...\n";
    InProcessAggregator agg(c.broker->uri(), c.work.path() / "aggregator", c.catalogue, c.log);
    if (opt.phases.count("e2e")) phase_e2e(c, agg);
    if (opt.phases.count("signed")) phase_signed(c, agg);
    if (opt.phases.count("latency")) phase_latency(c, agg);
  }
  try {
    keeper.disconnect(500)->wait_for(1s);
  } catch (const mqtt::exception&) {
  }
  c.pub.reset();
  c.broker.reset();

  c.report.section("run", "run");
  c.report.add("wall_seconds", "wall time of this benchmark", seconds_since(started), "s", 1);
  std::cout << "postwatch-bench-e2e: " << std::thread::hardware_concurrency() << " CPUs, " << opt.connections
            << " publisher connections x " << opt.inflight << " in flight, ~" << opt.seconds << " s per run\n";
  return c.finish("postwatch-bench-e2e", opt.json_file);
}

}  // namespace postwatch::bench::e2e
