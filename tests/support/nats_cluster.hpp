// A NATS cluster with JetStream and its MQTT listener, on free loopback ports, stopped on
// destruction: the broker of a clustered deployment (docs/scale-out.md). Every node maps the
// agents' events topics onto the partition subjects, as postwatch-broker-config --nats does.
#pragma once

#include "support/test_support.hpp"

#include <memory>
#include <string>
#include <vector>

namespace postwatch::test {

class NatsCluster {
 public:
  explicit NatsCluster(int nodes = 3, unsigned partitions = 16);
  // How many partition subjects the events are mapped onto (what the instances must settle on).
  unsigned partitions() const { return partitions_; }
  ~NatsCluster();
  NatsCluster(const NatsCluster&) = delete;
  NatsCluster& operator=(const NatsCluster&) = delete;

  int size() const { return static_cast<int>(nodes_.size()); }
  // The aggregator key and enrolment secret every instance of this cluster is provisioned with
  // (docs/security.md, "Key custody"), made with the cluster: for --keys-dir.
  std::string keys_dir() const { return (dir_.path() / "aggregator-keys").string(); }
  // nats://127.0.0.1:<port>,... for --nats.
  std::string servers() const;
  // The same, one URL each, for a NatsLink of the test's own.
  std::vector<std::string> server_urls() const;
  // tcp://127.0.0.1:<mqtt port> of node `i`, for agents and --broker.
  std::string mqtt_uri(int i = 0) const;
  unsigned short mqtt_port(int i = 0) const { return nodes_[static_cast<std::size_t>(i)].mqtt; }
  void kill(int i);   // SIGKILL
  void start(int i);  // again, on the same ports and store
  // Waits until every running node reports JetStream healthy.
  bool healthy(std::chrono::milliseconds timeout);
  // Each unhealthy node's /healthz answer and log, for a failure message.
  std::string unhealthy() const;
  std::string log(int i) const;
  // From a running node's monitoring endpoint: which node leads `stream` (-1: none known),
  // and how many messages it holds (-1: unknown).
  int stream_leader(const std::string& stream);
  long long stream_messages(const std::string& stream);
  // Messages the consumers of `stream` have not delivered or not had acknowledged, each
  // consumer as its leader reports it (-1: a consumer has no leader now). Zero means every
  // message reached its subscriber and was acknowledged, whatever the stream still holds
  // (docs/scale-out.md, "NATS 2.9 limits").
  long long consumers_pending(const std::string& stream);
  // The node each consumer of `stream` is led by (hosted on, for a single-replica one such as a
  // key-value watch), as that node reports it; consumers without a leader are left out.
  std::vector<int> consumer_nodes(const std::string& stream);
  // Every node's copy of `stream` and its consumers with messages pending, for a failure message.
  std::string stream_states(const std::string& stream);

 private:
  struct Node {
    unsigned short client = 0, route = 0, mqtt = 0, monitor = 0;
    std::unique_ptr<ChildProcess> proc;
  };
  TempDir dir_;
  unsigned partitions_;
  std::vector<Node> nodes_;
};

}  // namespace postwatch::test
