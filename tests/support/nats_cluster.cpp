#include "support/nats_cluster.hpp"

#include "postwatch/event_partitions.hpp"

#include <csignal>
#include <fstream>
#include <stdexcept>

namespace postwatch::test {

NatsCluster::NatsCluster(int nodes, unsigned partitions) : partitions_(partitions) {
  nodes_.resize(static_cast<std::size_t>(nodes));
  for (auto& n : nodes_) n = Node{free_port(), free_port(), free_port(), free_port(), nullptr};
  for (int i = 0; i < nodes; ++i) start(i);
  if (!healthy(std::chrono::seconds(30)))
    throw std::runtime_error("the NATS cluster did not become healthy:\n" + log(0));
}

NatsCluster::~NatsCluster() {
  for (auto& n : nodes_)
    if (n.proc) {
      n.proc->signal(SIGTERM);
      if (n.proc->wait(std::chrono::seconds(5)) == -1) n.proc->signal(SIGKILL);
    }
}

std::string NatsCluster::servers() const {
  std::string s;
  for (const auto& n : nodes_)
    s += (s.empty() ? "" : ",") + std::string("nats://127.0.0.1:") + std::to_string(n.client);
  return s;
}

std::string NatsCluster::mqtt_uri(int i) const {
  return "tcp://127.0.0.1:" + std::to_string(nodes_[static_cast<std::size_t>(i)].mqtt);
}

void NatsCluster::start(int i) {
  auto& n = nodes_[static_cast<std::size_t>(i)];
  auto name = "n" + std::to_string(i + 1);
  auto conf = dir_.path() / (name + ".conf");
  {
    std::ofstream out(conf);
    out << "server_name: " << name << "\nlisten: 127.0.0.1:" << n.client << "\nhttp: 127.0.0.1:" << n.monitor
        << "\njetstream { store_dir: \"" << (dir_.path() / name).string()
        << "\" }\n"
        // One in-memory replica per MQTT subscription's consumer: a replicated one costs
        // 130-670 ms of the cluster's meta layer per agent subscribing (docs/scale-out.md).
        << "mqtt { listen: 127.0.0.1:" << n.mqtt << ", consumer_replicas: 1, consumer_memory_storage: true }\n"
        << "mappings = { \"" << partitions::mapping_source << "\": \"" << partitions::mapping_destination(partitions_)
        << "\" }\n";
    if (nodes_.size() > 1) {
      out << "cluster { name: postwatch-test, listen: 127.0.0.1:" << n.route << ", routes: [";
      for (std::size_t k = 0; k < nodes_.size(); ++k) out << (k ? ", " : "") << "nats://127.0.0.1:" << nodes_[k].route;
      out << "] }\n";
    }
  }
  n.proc = std::make_unique<ChildProcess>(std::vector<std::string>{"nats-server", "-c", conf.string()},
                                          dir_.path() / (name + ".log"));
  if (!wait_until([&] { return port_accepts(n.mqtt) || !n.proc->running(); }, std::chrono::seconds(15)) ||
      !n.proc->running())
    throw std::runtime_error("nats-server " + name + " did not start: " + n.proc->log());
}

void NatsCluster::kill(int i) {
  auto& n = nodes_[static_cast<std::size_t>(i)];
  if (!n.proc) return;
  n.proc->signal(SIGKILL);
  n.proc->wait(std::chrono::seconds(5));
  n.proc.reset();
}

bool NatsCluster::healthy(std::chrono::milliseconds timeout) {
  return wait_until(
      [&] {
        for (const auto& n : nodes_)
          if (n.proc && http_get(n.monitor, "/healthz").status != 200) return false;
        return true;
      },
      timeout, std::chrono::milliseconds(100));
}

std::string NatsCluster::log(int i) const {
  const auto& n = nodes_[static_cast<std::size_t>(i)];
  return n.proc ? n.proc->log() : "(not running)";
}

}  // namespace postwatch::test
