// What postwatch-bench-cluster runs against the brokers: a group of postwatch-aggregator
// processes, and the MQTT load that feeds them.
#pragma once

#include "bench_events.hpp"
#include "cluster_bench_support.hpp"

#include <mqtt/async_client.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace postwatch::bench {

// One configuration's aggregator processes, each with its own client id, data dir and port.
// On NATS they form one cluster group; on Mosquitto each is a plain instance.
class AggregatorGroup {
 public:
  struct Instance {
    std::string id;
    unsigned short http_port = 0;
    fs::path log;
    std::vector<std::string> argv;
    std::unique_ptr<test::ChildProcess> proc;
    std::string pid() const { return std::to_string(proc->pid()); }
  };

  AggregatorGroup(const fs::path& binary, const BrokerSet& brokers, const std::string& group, int count,
                  const Options& opt);
  ~AggregatorGroup();

  std::size_t size() const { return instances_.size(); }
  Instance& at(std::size_t i) { return instances_[i]; }
  bool clustered() const { return clustered_; }

  void start(std::size_t i);
  // SIGKILL, as a crash or the OOM killer would; the process is reaped before this returns.
  void kill(std::size_t i);

  // The parsed body of a 200 answer; null otherwise.
  json get(std::size_t i, const std::string& target);
  // Throws with the log's tail when instance i has exited.
  void check_running(std::size_t i);

  // Every instance in `which` answers /readyz; clustered, each is ready (holds every partition
  // it won), lists exactly `which` as members, and every partition is held exactly once.
  bool settled(const std::vector<std::size_t>& which);
  std::vector<std::size_t> all() const;
  void wait_settled(std::chrono::seconds timeout);

  // Summed over the instances; nothing when one did not answer (a busy io thread: ask again).
  std::optional<std::uint64_t> events_accepted();
  // Each instance's counters, cluster view and log tail, for an error message.
  std::string diagnostics();

  // Since mark_logs(), or since the start.
  LogProblems log_problems() const;
  void mark_logs();
  // With --logs DIR: the aggregators' logs, and the NATS nodes' if any, as <prefix>-<name>.log.
  void save_logs(const Options& opt, const std::string& prefix, const test::NatsCluster* nats) const;

 private:
  test::TempDir dir_;
  bool clustered_;
  unsigned partitions_;
  std::vector<Instance> instances_;
  std::map<std::string, std::uintmax_t> marks_;
};

struct PublishResult {
  std::uint64_t messages = 0, bytes = 0;  // bytes: payloads
  Clock::time_point start, end;           // first publish, last acknowledgement
};

// `connections` Paho clients spread over the brokers' MQTT listeners, each with at most
// `window` unacknowledged QoS 1 messages. Agent a always publishes on connection a % connections,
// so its batches arrive in order.
class LoadPublisher {
 public:
  LoadPublisher(const std::vector<std::string>& uris, std::size_t connections, std::size_t window,
                const std::string& tag);
  ~LoadPublisher();

  // As fast as the windows allow for `length`.
  PublishResult run(const EventMaker& maker, const std::vector<BenchAgent>& agents, std::size_t batch,
                    std::chrono::duration<double> length);

  // `rate` messages/s in all, spread evenly, until stop(); behind schedule it catches up as
  // fast as the windows allow.
  void start_steady(const EventMaker& maker, const std::vector<BenchAgent>& agents, std::size_t batch, double rate);
  PublishResult stop();
  std::uint64_t sent() const;
  // Messages published per agent (its seqs are 1 .. this x batch); read after run() or stop().
  const std::vector<std::uint64_t>& agent_messages() const { return agent_sent_; }

 private:
  void start(const EventMaker& maker, const std::vector<BenchAgent>& agents, std::size_t batch, double rate,
             Clock::time_point deadline);
  PublishResult finish();

  std::size_t window_;
  std::vector<std::unique_ptr<mqtt::async_client>> clients_;
  std::vector<std::thread> threads_;
  std::vector<std::unique_ptr<std::atomic<std::uint64_t>>> sent_, bytes_;
  std::vector<std::uint64_t> agent_sent_;
  std::vector<std::string> errors_;
  std::atomic<bool> stop_flag_{false};
  Clock::time_point start_;
};

// Agent a at post a % posts: every post, every partition, every instance.
std::vector<BenchAgent> make_agents(const EventMaker& maker, const std::string& tag, const Options& opt);

}  // namespace postwatch::bench
