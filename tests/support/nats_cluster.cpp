#include "support/nats_cluster.hpp"

#include "postwatch/event_partitions.hpp"
#include "trust/aggregator_identity.hpp"

#include <nlohmann/json.hpp>

#include <csignal>
#include <fstream>
#include <map>
#include <set>
#include <stdexcept>

namespace postwatch::test {

NatsCluster::NatsCluster(int nodes, unsigned partitions) : partitions_(partitions) {
  // What an operator copies to every instance before they start, made as an aggregator's first
  // start makes it.
  postwatch::aggregator::AggregatorIdentity::load_or_create(keys_dir());
  nodes_.resize(static_cast<std::size_t>(nodes));
  for (auto& n : nodes_) n = Node{free_port(), free_port(), free_port(), free_port(), nullptr};
  for (int i = 0; i < nodes; ++i) start(i);
  if (!healthy(std::chrono::seconds(30)))
    throw std::runtime_error("the NATS cluster did not become healthy:\n" + unhealthy());
}

NatsCluster::~NatsCluster() {
  for (auto& n : nodes_)
    if (n.proc) {
      n.proc->signal(SIGTERM);
      if (n.proc->wait(std::chrono::seconds(5)) == -1) n.proc->signal(SIGKILL);
    }
}

std::vector<std::string> NatsCluster::server_urls() const {
  std::vector<std::string> out;
  for (const auto& n : nodes_) out.push_back("nats://127.0.0.1:" + std::to_string(n.client));
  return out;
}

std::string NatsCluster::servers() const {
  std::string s;
  for (const auto& url : server_urls()) s += (s.empty() ? "" : ",") + url;
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
        // One replica per MQTT subscription's consumer: a replicated one costs 130-670 ms of
        // the cluster's meta layer per agent subscribing (docs/scale-out.md).
        << "mqtt { listen: 127.0.0.1:" << n.mqtt << ", consumer_replicas: 1 }\n"
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

std::string NatsCluster::unhealthy() const {
  std::string report;
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    const auto& n = nodes_[i];
    if (!n.proc) continue;
    auto r = http_get(n.monitor, "/healthz");
    if (r.status == 200) continue;
    report += "---- n" + std::to_string(i + 1) + (n.proc->running() ? "" : " (exited)") + ": /healthz " +
              std::to_string(r.status) + " " + r.body + "\n" + n.proc->log() + "\n";
  }
  return report.empty() ? "(every node healthy now)" : report;
}

std::string NatsCluster::log(int i) const {
  const auto& n = nodes_[static_cast<std::size_t>(i)];
  return n.proc ? n.proc->log() : "(not running)";
}

namespace {
// The stream's entry in a running node's /jsz, or null.
nlohmann::json stream_detail(const std::vector<unsigned short>& monitors, const std::string& stream) {
  for (auto port : monitors) {
    auto r = http_get(port, "/jsz?streams=true");
    if (r.status != 200) continue;
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    if (!j.is_object() || !j.contains("account_details")) continue;
    for (const auto& a : j["account_details"])
      for (const auto& s : a.value("stream_detail", nlohmann::json::array()))
        if (s.value("name", "") == stream) return s;
  }
  return nullptr;
}
}  // namespace

int NatsCluster::stream_leader(const std::string& stream) {
  std::vector<unsigned short> monitors;
  for (const auto& n : nodes_)
    if (n.proc) monitors.push_back(n.monitor);
  auto s = stream_detail(monitors, stream);
  if (!s.is_object() || !s.contains("cluster")) return -1;
  auto leader = s["cluster"].value("leader", "");
  for (int i = 0; i < size(); ++i)
    if (leader == "n" + std::to_string(i + 1)) return i;
  return -1;
}

long long NatsCluster::stream_messages(const std::string& stream) {
  std::vector<unsigned short> monitors;
  for (const auto& n : nodes_)
    if (n.proc) monitors.push_back(n.monitor);
  auto s = stream_detail(monitors, stream);
  return s.is_object() && s.contains("state") ? s["state"].value("messages", -1LL) : -1;
}

long long NatsCluster::consumers_pending(const std::string& stream) {
  // Each consumer as its leader reports it: a follower's copy can lag.
  std::map<std::string, long long> pending;
  std::set<std::string> seen;
  for (int i = 0; i < size(); ++i) {
    const auto& n = nodes_[static_cast<std::size_t>(i)];
    if (!n.proc) continue;
    auto r = http_get(n.monitor, "/jsz?consumers=true");
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    if (!j.is_object() || !j.contains("account_details")) continue;
    const std::string me = "n" + std::to_string(i + 1);
    for (const auto& a : j["account_details"])
      for (const auto& d : a.value("stream_detail", nlohmann::json::array())) {
        if (d.value("name", "") != stream) continue;
        for (const auto& c : d.value("consumer_detail", nlohmann::json::array())) {
          auto name = c.value("name", "");
          seen.insert(name);
          if (c.value("cluster", nlohmann::json::object()).value("leader", "") != me) continue;
          pending[name] = c.value("num_ack_pending", 0LL) + c.value("num_pending", 0LL);
        }
      }
  }
  if (seen.empty() || pending.size() != seen.size()) return -1;  // a consumer without a leader
  long long total = 0;
  for (const auto& [name, n] : pending) total += n;
  return total;
}

std::vector<int> NatsCluster::consumer_nodes(const std::string& stream) {
  std::vector<int> out;
  for (int i = 0; i < size(); ++i) {
    const auto& n = nodes_[static_cast<std::size_t>(i)];
    if (!n.proc) continue;
    auto j = nlohmann::json::parse(http_get(n.monitor, "/jsz?consumers=true").body, nullptr, false);
    if (!j.is_object() || !j.contains("account_details")) continue;
    for (const auto& a : j["account_details"])
      for (const auto& d : a.value("stream_detail", nlohmann::json::array()))
        if (d.value("name", "") == stream)
          for (const auto& c : d.value("consumer_detail", nlohmann::json::array()))
            if (c.value("cluster", nlohmann::json::object()).value("leader", "") == "n" + std::to_string(i + 1))
              out.push_back(i);
  }
  return out;
}

std::string NatsCluster::stream_states(const std::string& stream) {
  std::string out;
  for (int i = 0; i < size(); ++i) {
    const auto& n = nodes_[static_cast<std::size_t>(i)];
    out += "n" + std::to_string(i + 1) + ": ";
    if (!n.proc) {
      out += "(not running)\n";
      continue;
    }
    auto r = http_get(n.monitor, "/jsz?streams=true&consumers=true");
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    nlohmann::json s;
    if (j.is_object() && j.contains("account_details"))
      for (const auto& a : j["account_details"])
        for (const auto& d : a.value("stream_detail", nlohmann::json::array()))
          if (d.value("name", "") == stream) s = d;
    if (!s.is_object()) {
      out += "(no stream)\n";
      continue;
    }
    const auto& st = s["state"];
    out += "messages " + st.value("messages", nlohmann::json(-1)).dump() + " first " +
           st.value("first_seq", nlohmann::json(-1)).dump() + " last " +
           st.value("last_seq", nlohmann::json(-1)).dump() + " leader " +
           s.value("cluster", nlohmann::json::object()).value("leader", "?") + "\n";
    for (const auto& c : s.value("consumer_detail", nlohmann::json::array())) {
      auto pending = c.value("num_ack_pending", 0LL) + c.value("num_pending", 0LL);
      if (pending == 0) continue;
      out += "  " + c.value("name", "?") + ": ack floor " +
             c.value("ack_floor", nlohmann::json::object()).value("stream_seq", nlohmann::json(-1)).dump() +
             " ack pending " + std::to_string(c.value("num_ack_pending", 0LL)) + " pending " +
             std::to_string(c.value("num_pending", 0LL)) + "\n";
    }
  }
  return out;
}

}  // namespace postwatch::test
