// Phase 1, throughput: events/s applied by 1 plain instance on Mosquitto and by 1, 2, 3
// clustered instances on a 3-node NATS cluster, fed the same load; each process's CPU and RSS.
#include "cluster_bench_aggregators.hpp"
#include "cluster_bench_phases.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <stdexcept>
#include <thread>

namespace postwatch::bench {

using namespace std::chrono_literals;

namespace {

RunFigures run_config(const std::string& config, int count, const Options& opt, const fs::path& binary,
                      const BrokerSet& brokers, const test::NatsCluster* nats, const EventMaker& maker) {
  const std::string group = "bench" + std::to_string(::getpid()) + "-" + config;  // fresh per configuration
  std::cerr << config << ": starting " << count << " aggregator(s)...\n";
  RunFigures f;
  f.config = config, f.broker = brokers.kind, f.instances = static_cast<std::size_t>(count);
  AggregatorGroup aggs(binary, brokers, group, count, opt);
  aggs.wait_settled(90s);
  const auto agents = make_agents(maker, group, opt);
  LoadPublisher publisher(brokers.mqtt, opt.connections, opt.window, config);

  // CPU over the run: from just before the first publish until every event is applied.
  const std::string self = std::to_string(::getpid());
  auto cpu_now = [&] {
    std::vector<double> v{machine_busy_seconds(), cpu_seconds(self)};
    for (const auto& b : brokers.procs) v.push_back(cpu_seconds(b.pid));
    for (std::size_t i = 0; i < aggs.size(); ++i) v.push_back(cpu_seconds(aggs.at(i).pid()));
    return v;
  };
  const auto cpu0 = cpu_now();
  std::cerr << config << ": publishing for " << opt.seconds << " s...\n";
  auto pub = publisher.run(maker, agents, opt.batch, std::chrono::duration<double>(opt.seconds));
  f.messages = pub.messages;
  f.events = pub.messages * opt.batch;
  f.payload_bytes_per_message =
      static_cast<double>(pub.bytes) / static_cast<double>(std::max<std::uint64_t>(1, pub.messages));

  // Each event is applied once, by its post's holder: the sum reaches what we published.
  auto last_progress = Clock::now();
  while (f.applied < f.events) {
    check_stop();
    if (auto n = aggs.events_accepted(); n && *n != f.applied) f.applied = *n, last_progress = Clock::now();
    if (f.applied >= f.events) break;
    if (Clock::now() - last_progress > 30s)
      throw std::runtime_error(config + ": no progress for 30 s at " + std::to_string(f.applied) + " of " +
                               std::to_string(f.events) + " events applied:\n" + aggs.diagnostics());
    std::this_thread::sleep_for(50ms);
  }
  const auto done = Clock::now();
  const auto cpu1 = cpu_now();
  std::cerr << config << ": " << f.applied << " events applied " << fixed(seconds_between(pub.end, done), 1)
            << " s after the last publish acknowledgement; stopping\n";
  if (f.applied > f.events)
    std::cerr << config << ": warning: " << f.applied << " events applied for " << f.events << " published\n";

  f.seconds = seconds_between(pub.start, done);
  f.publish_seconds = seconds_between(pub.start, pub.end);
  f.events_per_s = static_cast<double>(f.events) / f.seconds;
  f.messages_per_s = static_cast<double>(f.messages) / f.seconds;
  // The bench process is the publisher plus the completion polling after the last publish.
  auto pct = [&](std::size_t i) { return 100 * (cpu1[i] - cpu0[i]) / f.seconds; };
  f.machine_cpu_percent = pct(0);
  f.publisher = {"publisher (bench)", pct(1), rss_mib(self)};
  std::size_t k = 2;
  for (const auto& b : brokers.procs) {
    f.brokers.push_back({b.name, pct(k++), rss_mib(b.pid)});
    f.broker_cpu_percent += f.brokers.back().cpu_percent;
  }
  for (std::size_t i = 0; i < aggs.size(); ++i)
    f.aggregators.push_back({"aggregator " + aggs.at(i).id, pct(k++), rss_mib(aggs.at(i).pid())});
  std::vector<const ProcessFigures*> every{&f.publisher};
  for (const auto& p : f.brokers) every.push_back(&p);
  for (const auto& p : f.aggregators) every.push_back(&p);
  for (const auto* p : every) {
    f.total_cpu_percent += p->cpu_percent;
    if (p->cpu_percent > f.busiest_cpu_percent) f.busiest = p->name, f.busiest_cpu_percent = p->cpu_percent;
  }
  f.log = aggs.log_problems();
  aggs.save_logs(opt, config, nats);
  std::cerr << config << ": " << fixed(f.events_per_s) << " events/s applied; stopping the aggregators...\n";
  return f;
}

}  // namespace

std::vector<RunFigures> phase_throughput(const Options& opt, const fs::path& binary, const EventMaker& maker) {
  std::vector<RunFigures> runs;
  {
    std::cerr << "throughput: Mosquitto, one plain instance\n";
    test::MosquittoBroker mosquitto;
    runs.push_back(run_config("mosquitto-1", 1, opt, binary, broker_set(mosquitto), nullptr, maker));
  }
  for (int count : {1, 2, 3}) {
    check_stop();
    // A fresh NATS cluster per configuration: an empty stream and buckets, the same start for each.
    std::cerr << "throughput: starting a 3-node NATS cluster for " << count << " instance(s)...\n";
    test::NatsCluster nats(3, opt.partitions);
    runs.push_back(run_config("nats-" + std::to_string(count), count, opt, binary, broker_set(nats), &nats, maker));
    std::cerr << "throughput: stopping the NATS cluster\n";
  }
  for (auto& r : runs) r.ratio = r.events_per_s / runs.front().events_per_s;
  return runs;
}

void print_throughput(const std::vector<RunFigures>& runs, double cores, const Options& opt, std::size_t posts) {
  std::printf(
      "\n1. Throughput: %zu publisher connection(s) x window %zu, batches of %zu events, %zu agents over all posts, "
      "%.1f s of publishing per configuration, %.0f payload bytes per message. Applied = events_accepted of "
      "/api/v1/stats summed over the instances.\n",
      opt.connections, opt.window, opt.batch, opt.agents_per_post * posts, opt.seconds,
      runs.empty() ? 0.0 : runs.front().payload_bytes_per_message);
  std::printf("\n%-11s %4s %9s %7s %6s %7s %6s %-14s %9s %-13s %6s %8s %-13s %-12s\n", "config", "inst", "events/s",
              "msgs/s", "ratio", "publish", "drain", "broker CPU %", "publisher", "aggregators", "ours", "machine",
              "agg RSS MiB", "broker RSS");
  std::printf("%-11s %4s %9s %7s %6s %7s %6s %-14s %9s %-13s %6s %8s %-13s %-12s\n", "", "", "applied", "", "/mosq",
              "s", "s", "(each)", "CPU %", "CPU % each", "CPU %", "CPU %", "each", "MiB (sum)");
  for (const auto& r : runs) {
    std::string cpu, rss, bcpu;
    for (const auto& a : r.aggregators) {
      cpu += (cpu.empty() ? "" : "/") + fixed(a.cpu_percent);
      rss += (rss.empty() ? "" : "/") + fixed(a.rss_mib);
    }
    double brss = 0;
    for (const auto& b : r.brokers) {
      bcpu += (bcpu.empty() ? "" : "/") + fixed(b.cpu_percent);
      brss += b.rss_mib;
    }
    if (r.brokers.size() > 1) bcpu = fixed(r.broker_cpu_percent) + " (" + bcpu + ")";
    std::printf("%-11s %4zu %9.0f %7.0f %6.2f %7.1f %6.1f %-14s %9.0f %-13s %6.0f %8.0f %-13s %-12.0f\n",
                r.config.c_str(), r.instances, r.events_per_s, r.messages_per_s, r.ratio, r.publish_seconds,
                r.seconds - r.publish_seconds, bcpu.c_str(), r.publisher.cpu_percent, cpu.c_str(), r.total_cpu_percent,
                r.machine_cpu_percent, rss.c_str(), brss);
  }
  std::printf(
      "\nCPU %% is of one core; the machine has %.0f (%.0f%%). ours = the processes in the table, machine = every\n"
      "process. drain = from the last publish acknowledgement until every event was applied. mosquitto-1: one\n"
      "plain instance (no cluster flags) on Mosquitto; nats-N: N instances in one cluster group on a 3-node NATS\n"
      "cluster (JetStream R3), the load through its 3 MQTT listeners.\n",
      cores, 100 * cores);
  for (const auto& r : runs) {
    // A drain means the aggregators fell behind what the broker accepted: the rate is theirs.
    const double drain = r.seconds - r.publish_seconds;
    const bool aggregators_limit = drain > std::max(0.25, 0.1 * r.publish_seconds);
    std::string why = r.busiest_cpu_percent >= 85 ? "it saturates a core"
                      : r.machine_cpu_percent >= 90 * cores
                          ? "no process saturates a core, but the machine's cores are full (" +
                                fixed(r.machine_cpu_percent - r.total_cpu_percent) + "% by other processes)"
                          : "the CPU is not the limit";
    std::printf("%-12s busiest: %s (%.0f%% of a core); %s; %s\n", (r.config + ":").c_str(), r.busiest.c_str(),
                r.busiest_cpu_percent,
                aggregators_limit ? "the aggregators fell behind (the rate is theirs)"
                                  : "the aggregators kept up: the publish path set the rate",
                why.c_str());
  }
  for (const auto& r : runs)
    if (r.log.warnings + r.log.errors > 0) print_log_problems(r.config, r.log, 3);
}

}  // namespace postwatch::bench
