// postwatch-bench-cluster's three phases: what each measures (its figures, also written as
// JSON), how it is run and how it is printed. One .cpp per phase; main() in cluster_bench.cpp.
#pragma once

#include "bench_events.hpp"
#include "cluster_bench_support.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace postwatch::bench {

// ---------------------------------------------------------------- 1. throughput

struct ProcessFigures {
  std::string name;
  double cpu_percent = 0, rss_mib = 0;
};

struct RunFigures {
  std::string config, broker;
  std::size_t instances = 0;
  std::uint64_t messages = 0, events = 0, applied = 0;
  double payload_bytes_per_message = 0;
  double seconds = 0, publish_seconds = 0, events_per_s = 0, messages_per_s = 0, ratio = 0;
  std::vector<ProcessFigures> brokers;
  ProcessFigures publisher;
  std::vector<ProcessFigures> aggregators;
  double broker_cpu_percent = 0;   // the broker processes together
  double total_cpu_percent = 0;    // every process above
  double machine_cpu_percent = 0;  // every process on the machine (this one shares it with a CI)
  std::string busiest;
  double busiest_cpu_percent = 0;
  LogProblems log;
};

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(ProcessFigures, name, cpu_percent, rss_mib)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(RunFigures, config, broker, instances, messages, events, applied,
                                   payload_bytes_per_message, seconds, publish_seconds, events_per_s, messages_per_s,
                                   ratio, brokers, publisher, aggregators, broker_cpu_percent, total_cpu_percent,
                                   machine_cpu_percent, busiest, busiest_cpu_percent, log)

std::vector<RunFigures> phase_throughput(const Options& opt, const fs::path& binary, const EventMaker& maker);
void print_throughput(const std::vector<RunFigures>& runs, double cores, const Options& opt, std::size_t posts);

// ---------------------------------------------------------------- 2. takeover

struct KillSample {
  std::string victim;
  std::vector<std::uint32_t> partitions;  // the victim held these
  double held_s = 0;                      // kill -> every one held by a survivor
  double applying_s = 0;                  // kill -> every one's new holder past the victim's last seq
  double rejoin_ready_s = 0;              // restart -> /readyz
  double rejoin_s = 0;                    // restart -> it holds what it wins again, each partition once
  std::uint64_t survivors_takeovers = 0;  // the survivors' takeovers counters went up by this
  // From the kill until the rejoin: CPU % of one core of the bench, brokers and aggregators, and
  // of every other process on the machine; the 1-minute load average at the kill.
  double ours_cpu_percent = 0, others_cpu_percent = 0;
  std::string load_average;
  // The restarted instance's store replay, from its log: part of the rejoin.
  std::uint64_t replayed_events = 0;
  double replay_s = 0;
  // During the rejoin, the longest time a partition's applied seqs stood still: over the
  // partitions the survivors kept, and over those that moved to the rejoining instance.
  double rejoin_kept_stall_s = 0, rejoin_moved_stall_s = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(KillSample, victim, partitions, held_s, applying_s, rejoin_ready_s, rejoin_s,
                                   survivors_takeovers, ours_cpu_percent, others_cpu_percent, load_average,
                                   replayed_events, replay_s, rejoin_kept_stall_s, rejoin_moved_stall_s)

struct Spread {
  std::size_t n = 0;
  double p50 = 0, p99 = 0, max = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Spread, n, p50, p99, max)

struct TakeoverFigures {
  std::int64_t lease_ms = 0;
  double steady_rate = 0, steady_events_per_s = 0;
  std::vector<KillSample> kills;
  Spread held, applying, rejoin_ready, rejoin, rejoin_after_replay, kept_stall, moved_stall;
  double steady_stall_s = 0;  // the longest stall of any partition over 4 s before the first kill
  std::uint64_t published_events = 0, applied_events = 0;  // at the end, from one instance's global view
  bool all_applied = false;
  std::vector<std::string> mismatch;  // when not all_applied: what each instance and the stream say
  LogProblems log_start, log_kills;   // until the cluster settled; from then on
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(TakeoverFigures, lease_ms, steady_rate, steady_events_per_s, kills, held, applying,
                                   rejoin_ready, rejoin, rejoin_after_replay, kept_stall, moved_stall, published_events,
                                   applied_events, all_applied, mismatch, log_start, log_kills)

TakeoverFigures phase_takeover(const Options& opt, const fs::path& binary, const EventMaker& maker, double steady_rate);
void print_takeover(const TakeoverFigures& f);

// ---------------------------------------------------------------- 3. broker ceiling

struct CeilingFigures {
  std::string broker;
  int nodes = 0;
  std::size_t messages = 0, received = 0, duplicates = 0, bytes = 0;
  double seconds = 0, messages_per_s = 0, publish_messages_per_s = 0, ratio = 0;
  double broker_cpu_percent = 0, publisher_cpu_percent = 0, subscriber_cpu_percent = 0;
  std::string path;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(CeilingFigures, broker, nodes, messages, received, duplicates, bytes, seconds,
                                   messages_per_s, publish_messages_per_s, ratio, broker_cpu_percent,
                                   publisher_cpu_percent, subscriber_cpu_percent, path)

std::vector<CeilingFigures> phase_ceiling(const Options& opt);
void print_ceiling(const std::vector<CeilingFigures>& cs, const Options& opt);
// The publisher child of the ceiling phase: `postwatch-bench-cluster ceiling-publisher ...`.
int ceiling_publisher_main(int argc, char** argv);

}  // namespace postwatch::bench
