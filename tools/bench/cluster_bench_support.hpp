// postwatch-bench-cluster's plumbing, shared by its phases: the interrupt flag and timing helpers,
// /proc readers, the brokers under test, the aggregator-log scan and the options.
#pragma once

#include "postwatch/event_partitions.hpp"
#include "support/nats_cluster.hpp"
#include "support/test_support.hpp"

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace postwatch::bench {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;
namespace fs = std::filesystem;

// Set by SIGINT/SIGTERM; every wait loop checks it, so the children are stopped promptly.
inline std::atomic<bool> g_stop{false};
void check_stop();  // throws "interrupted" once g_stop is set

double seconds_between(Clock::time_point a, Clock::time_point b);
std::int64_t steady_ns();
// Sleeps in slices, so an interrupt is not held up.
void pause_for(std::chrono::milliseconds d);
std::string fixed(double v, int precision = 0);

// ---------------------------------------------------------------- /proc readers

double cpu_seconds(const std::string& pid);
// Busy CPU seconds of the whole machine (every core, every process), from /proc/stat.
double machine_busy_seconds();
double rss_mib(const std::string& pid);
std::string log_tail(const fs::path& file, std::size_t bytes = 2000);
std::string load_average();
// "exe ..., State: ..., wchan ...": a silent child is either still the fork of this binary
// (never exec'd) or the aggregator stuck somewhere.
std::string process_state(const std::string& pid);

// ---------------------------------------------------------------- brokers

struct Proc {
  std::string name, pid;
};

// What the load and the aggregators connect to.
struct BrokerSet {
  std::string kind;               // "mosquitto" or "nats"
  std::vector<std::string> mqtt;  // MQTT listener URIs
  std::string nats;               // --nats servers; empty for Mosquitto
  std::vector<Proc> procs;
  std::string keys_dir;  // NATS: the aggregator key the cluster's instances share (--keys-dir)
};

BrokerSet broker_set(const test::MosquittoBroker& b);
BrokerSet broker_set(const test::NatsCluster& n);

// ---------------------------------------------------------------- aggregator logs

// Warning and error lines of an aggregator log, counted by their text with the timestamp
// dropped and digits folded, so repeats of one message count together.
struct LogProblems {
  std::size_t warnings = 0, errors = 0;
  std::map<std::string, std::size_t> by_text;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(LogProblems, warnings, errors, by_text)

// From byte `from` on. The warning that the API has no tokens is expected here and not counted.
void scan_log(const fs::path& file, LogProblems& out, std::uintmax_t from = 0);
void print_log_problems(const std::string& what, const LogProblems& p, std::size_t lines = 6);

// ---------------------------------------------------------------- options

struct Options {
  double seconds = 6;
  std::size_t connections = 4, window = 8, batch = 100, agents_per_post = 2;
  std::int64_t lease_ms = 2000;
  unsigned partitions = partitions::default_count;
  std::size_t kills = 20;
  double steady_rate = 0;  // messages/s; 0: half of what 3 instances reached
  std::size_t ceiling_messages = 50'000, ceiling_bytes = 200, ceiling_window = 32;
  std::set<std::string> phases{"throughput", "takeover", "ceiling"};
  bool quick = false;
  std::string json_file, logs_dir;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Options, seconds, connections, window, batch, agents_per_post, lease_ms, partitions,
                                   kills, steady_rate, ceiling_messages, ceiling_bytes, ceiling_window, phases, quick)

}  // namespace postwatch::bench
