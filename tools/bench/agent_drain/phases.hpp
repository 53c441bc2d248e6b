// The phases of postwatch-bench-agent: spool fill (plaintext and encrypted), drain through a real
// Mosquitto, the agent as a child process, and a bare Paho baseline; what they share.
#pragma once

#include "agent_drain/common.hpp"
#include "agent_drain/report.hpp"
#include "agent_drain/subscriber.hpp"
#include "bench_run.hpp"
#include "postwatch/agent/agent.hpp"
#include "postwatch/agent/spool_store.hpp"
#include "postwatch/catalogue.hpp"
#include "support/test_support.hpp"

#include <spdlog/spdlog.h>

#include <memory>
#include <string>

namespace postwatch::bench::agent_drain {

struct Options {
  std::uint64_t events = 1'000'000;
  std::size_t batch = 500;
  std::size_t inflight = agent::AgentConfig{}.max_inflight_batches;
  std::string json_file;
};

struct Context : BenchRun {
  Context() : BenchRun(test::catalogue_path(), "agent") {}
  Options opt;
  std::string events_topic;
};

agent::SpoolOptions spool_options(const Context& c);

void phase_fill(Context& c);
void phase_fill_encrypted(Context& c);
// Returns the drain rate, events/s.
double phase_drain(Context& c, Subscriber& sub, const std::string& broker_uri, const std::string& broker_pid);
void phase_child(Context& c, Subscriber& sub, const std::string& broker_uri);
// Returns the baseline rate, events/s.
double phase_baseline(Context& c, Subscriber& sub, const std::string& broker_uri, const std::string& broker_pid);

}  // namespace postwatch::bench::agent_drain
