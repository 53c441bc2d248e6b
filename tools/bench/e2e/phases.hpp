// The four phases of postwatch-bench-e2e (ceiling, e2e with its signed variant, latency, scaling),
// what they share (options, the broker and publisher, the report) and how a run through the
// aggregator is measured.
#pragma once

#include "bench_run.hpp"
#include "e2e/common.hpp"
#include "e2e/in_process_aggregator.hpp"
#include "e2e/publisher.hpp"
#include "e2e/report.hpp"
#include "e2e/store_reader.hpp"
#include "postwatch/catalogue.hpp"
#include "support/test_support.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace postwatch::bench::e2e {

struct Options {
  double seconds = 4;
  bool quick = false;
  std::set<std::string> phases{"ceiling", "e2e", "signed", "latency", "scaling"};
  std::size_t connections = 4, inflight = 8;
  std::string json_file;
};

constexpr std::size_t kAgents = 142;  // one agent per catalogue post, unless scaling says otherwise
inline const std::vector<std::size_t> kBatches{1, 10, 100, 500};
constexpr std::size_t kScalingBatch = 10;
inline const std::vector<std::size_t> kScalingAgents{10, 100, 1000, 10000};
constexpr std::size_t kMaxEventsPerRun = 3'000'000;

struct Context : BenchRun {
  Context() : BenchRun(POSTWATCH_BENCH_CATALOGUE, "aggregator") {}
  Options opt;
  std::unique_ptr<test::MosquittoBroker> broker;
  std::string broker_pid;
  std::unique_ptr<Publisher> pub;
  std::map<std::size_t, double> ceiling_events_per_s;  // by batch size
  std::map<std::size_t, double> e2e_events_per_s;
  std::map<std::size_t, double> e2e_duration_s;
  int runs = 0;
  std::string tag(const std::string& kind) { return kind + std::to_string(++runs); }
};

inline std::string b_key(std::size_t batch) { return "b" + std::to_string(batch); }

// Messages for about `seconds` at `events_per_s`, a whole number per agent.
inline std::size_t messages_for(double events_per_s, double seconds, std::size_t batch, std::size_t agents) {
  double events = std::clamp(events_per_s * seconds, 2000.0, static_cast<double>(kMaxEventsPerRun));
  auto per_agent = static_cast<std::size_t>(std::ceil(events / static_cast<double>(batch * agents)));
  return std::max<std::size_t>(per_agent, 1) * agents;
}

struct AppliedRun {
  bool done = false;
  std::uint64_t events = 0;
  double seconds = 0;       // first publish -> last event applied (store's received_at)
  double poll_seconds = 0;  // the same, by polling /api/v1/stats
  double store_lag_s = 0;   // last applied -> everything committed to SQLite
  std::uint64_t max_pending = 0;
  double stats_ms_max = 0;
  std::size_t stats_bytes = 0;
  // CPU seconds: this process; the aggregator's io thread; its store writer (the thread that
  // appeared when the service started); Paho's library threads (started earlier by the
  // keeper client); this thread (polling, SQLite reads).
  double agg_cpu = 0, io_cpu = 0, writer_cpu = 0, paho_cpu = 0, main_cpu = 0, broker_cpu = 0, pub_cpu = 0;
  double cpu_window_s = 0;  // wall time the CPU figures above were taken over
  std::uint64_t duplicates = 0, gaps = 0, rejected = 0;
  StoreReader::Rows rows;
  json pub;
};

// Publishes one run through the aggregator and waits until all of it is applied and stored.
AppliedRun run_through_aggregator(Context& c, InProcessAggregator& agg, json spec, std::uint64_t expect_events);
void report_cpu(Context& c, const std::string& k, const std::string& label, const AppliedRun& r);
// Enrols `agents` agents of `tag` as `postwatch-agent enrol` does.
void enrol_bench_agents(Context& c, InProcessAggregator& agg, const std::string& tag, std::size_t agents);

void phase_machine(Context& c);
void phase_ceiling(Context& c);
void phase_e2e(Context& c, InProcessAggregator& agg);
void phase_signed(Context& c, InProcessAggregator& agg);
void phase_latency(Context& c, InProcessAggregator& agg);
void phase_scaling(Context& c);
// Every phase `opt` names, in the order 1, 4, 2, 3; prints the table (and writes the JSON).
int run(const Options& opt);

}  // namespace postwatch::bench::e2e
