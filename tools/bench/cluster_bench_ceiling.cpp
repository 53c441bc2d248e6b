// Phase 3, broker ceiling: QoS 1 messages/s from one Paho publisher (a child process) through the
// broker to one Paho subscriber, for Mosquitto and a 1-node and a 3-node NATS cluster.
#include "cluster_bench_phases.hpp"

#include <mqtt/async_client.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <deque>
#include <iostream>
#include <mutex>
#include <sstream>
#include <stdexcept>

namespace postwatch::bench {

using namespace std::chrono_literals;

namespace {

// Counts distinct messages of the current round (an 8-byte header: round, index).
class CeilingSubscriber {
 public:
  CeilingSubscriber(const std::string& uri, const std::string& topic)
      : client_(uri, "pw-bench-ceiling-sub-" + std::to_string(::getpid())) {
    client_.set_message_callback([this](mqtt::const_message_ptr m) {
      const auto& p = m->get_payload_ref();
      if (p.size() < 8) return;
      std::uint32_t round = 0, index = 0;
      std::memcpy(&round, p.data(), 4);
      std::memcpy(&index, p.data() + 4, 4);
      std::lock_guard<std::mutex> lock(mu_);
      if (round != round_ || index >= seen_.size()) return;
      if (seen_[index]) {
        duplicates_ += 1;
        return;
      }
      seen_[index] = 1;
      distinct_ += 1;
      last_ns_ = steady_ns();
    });
    client_.connect(mqtt::connect_options_builder().clean_session(true).keep_alive_interval(20s).finalize())->wait();
    // NATS's MQTT listener may refuse a QoS 1 subscription while its consumer is being made.
    for (int attempt = 1;; ++attempt) {
      auto t = client_.subscribe(topic, 1);
      t->wait();
      auto codes = t->get_subscribe_response().get_reason_codes();
      if (codes.empty() || codes[0] <= 1) break;
      if (attempt == 5) throw std::runtime_error("the broker refused the ceiling subscription 5 times");
      pause_for(500ms);
    }
  }
  ~CeilingSubscriber() {
    try {
      client_.disconnect(500)->wait_for(1s);
    } catch (const mqtt::exception&) {
    }
  }
  void reset(std::uint32_t round, std::size_t count) {
    std::lock_guard<std::mutex> lock(mu_);
    round_ = round, seen_.assign(count, 0), distinct_ = 0, duplicates_ = 0, last_ns_ = 0;
  }
  std::size_t distinct() {
    std::lock_guard<std::mutex> lock(mu_);
    return distinct_;
  }
  std::size_t duplicates() {
    std::lock_guard<std::mutex> lock(mu_);
    return duplicates_;
  }
  std::int64_t last_ns() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_ns_;
  }

 private:
  mqtt::async_client client_;
  std::mutex mu_;
  std::uint32_t round_ = 0;
  std::vector<std::uint8_t> seen_;
  std::size_t distinct_ = 0, duplicates_ = 0;
  std::int64_t last_ns_ = 0;
};

CeilingFigures measure_ceiling(const std::string& name, const BrokerSet& brokers, const Options& opt) {
  CeilingFigures f;
  f.broker = name;
  f.nodes = static_cast<int>(brokers.procs.size());
  f.messages = opt.ceiling_messages;
  f.bytes = opt.ceiling_bytes;
  // On a cluster the message crosses nodes: published to node 1, subscribed on node 2.
  const std::string pub_uri = brokers.mqtt[0], sub_uri = brokers.mqtt[brokers.mqtt.size() > 1 ? 1 : 0];
  f.path = brokers.mqtt.size() > 1 ? "node 1 -> node 2" : "one node";
  const std::string topic = "bench/ceiling/" + std::to_string(::getpid());
  CeilingSubscriber sub(sub_uri, topic);
  test::TempDir dir;
  const auto log = dir.path() / "publisher.log";
  test::ChildProcess child({fs::read_symlink("/proc/self/exe").string(), "ceiling-publisher", pub_uri,
                            "pw-bench-ceiling-pub-" + std::to_string(::getpid()), topic,
                            std::to_string(opt.ceiling_bytes), std::to_string(opt.ceiling_window)},
                           log, true);
  auto wait_log = [&](const std::string& what, std::chrono::seconds timeout) {
    std::string line;
    bool ok = test::wait_until(
        [&] {
          check_stop();
          auto text = child.log();
          auto at = text.find(what);
          if (at != std::string::npos) {
            line = text.substr(at, text.find('\n', at) - at);
            return true;
          }
          if (text.find("error ") != std::string::npos || !child.running()) return true;
          return false;
        },
        timeout, 5ms);
    if (!ok || line.empty()) throw std::runtime_error(name + ": ceiling publisher: " + child.log());
    return line;
  };
  wait_log("ready", 30s);

  const std::string self = std::to_string(::getpid()), child_pid = std::to_string(child.pid());
  auto round = [&](std::uint32_t r, std::size_t count) {
    sub.reset(r, count);
    const double b0 = [&] {
      double s = 0;
      for (const auto& p : brokers.procs) s += cpu_seconds(p.pid);
      return s;
    }();
    const double p0 = cpu_seconds(child_pid), s0 = cpu_seconds(self);
    child.write_stdin("go " + std::to_string(r) + " " + std::to_string(count) + "\n");
    auto done = wait_log("done " + std::to_string(r) + " ", 300s);
    const bool all = test::wait_until(
        [&] {
          check_stop();
          return sub.distinct() >= count;
        },
        60s, 1ms);
    std::istringstream in(done);
    std::string word;
    std::uint32_t rr = 0;
    std::int64_t start_ns = 0, end_ns = 0;
    in >> word >> rr >> start_ns >> end_ns;
    CeilingFigures g = f;
    g.received = sub.distinct();
    g.duplicates = sub.duplicates();
    g.seconds = static_cast<double>((all ? sub.last_ns() : steady_ns()) - start_ns) / 1e9;
    g.messages_per_s = static_cast<double>(g.received) / g.seconds;
    g.publish_messages_per_s = static_cast<double>(count) / (static_cast<double>(end_ns - start_ns) / 1e9);
    double b1 = 0;
    for (const auto& p : brokers.procs) b1 += cpu_seconds(p.pid);
    g.broker_cpu_percent = 100 * (b1 - b0) / g.seconds;
    g.publisher_cpu_percent = 100 * (cpu_seconds(child_pid) - p0) / g.seconds;
    g.subscriber_cpu_percent = 100 * (cpu_seconds(self) - s0) / g.seconds;
    return g;
  };
  // A warm-up round: connections, the subscription's consumer, the broker's caches.
  const std::size_t warm = std::clamp<std::size_t>(opt.ceiling_messages / 10, 500, 5000);
  std::cerr << "ceiling: " << name << ": " << warm << " messages to warm up, then " << opt.ceiling_messages << "...\n";
  round(1, warm);
  auto g = round(2, opt.ceiling_messages);
  g.messages = opt.ceiling_messages;
  std::cerr << "ceiling: " << name << ": " << g.received << " of " << g.messages << " received in "
            << fixed(g.seconds, 2) << " s\n";
  child.close_stdin();
  child.wait(5s);
  return g;
}

}  // namespace

// The child side: `ceiling-publisher URI CLIENT_ID TOPIC BYTES WINDOW`. Says "ready" once
// connected; then for each "go ROUND COUNT" on stdin publishes COUNT messages (QoS 1, at most
// WINDOW unacknowledged) and says "done ROUND START_NS END_NS" (steady clock: the first
// publish, the last acknowledgement).
int ceiling_publisher_main(int argc, char** argv) {
  if (argc != 7) return std::cerr << "usage: ceiling-publisher URI CLIENT_ID TOPIC BYTES WINDOW\n", 2;
  const std::string uri = argv[2], id = argv[3], topic = argv[4];
  const std::size_t bytes = std::max<std::size_t>(8, std::stoul(argv[5])), window = std::stoul(argv[6]);
  try {
    mqtt::async_client client(uri, id);
    client
        .connect(mqtt::connect_options_builder()
                     .clean_session(true)
                     .max_inflight(static_cast<int>(window * 2))
                     .keep_alive_interval(20s)
                     .finalize())
        ->wait();
    std::cout << "ready" << std::endl;
    std::string cmd;
    std::uint32_t round = 0;
    std::size_t count = 0;
    while (std::cin >> cmd && cmd == "go" && std::cin >> round >> count) {
      std::string payload(bytes, 'x');
      std::deque<mqtt::delivery_token_ptr> inflight;
      const auto start = steady_ns();
      for (std::uint32_t i = 0; i < count; ++i) {
        std::memcpy(payload.data(), &round, 4);
        std::memcpy(payload.data() + 4, &i, 4);
        if (inflight.size() >= window) {
          inflight.front()->wait();
          inflight.pop_front();
        }
        inflight.push_back(client.publish(topic, payload.data(), payload.size(), 1, false));
      }
      for (auto& t : inflight) t->wait();
      std::cout << "done " << round << " " << start << " " << steady_ns() << std::endl;
    }
    client.disconnect(1000)->wait_for(2s);
    return 0;
  } catch (const std::exception& e) {
    std::cout << "error " << e.what() << std::endl;
    return 1;
  }
}

std::vector<CeilingFigures> phase_ceiling(const Options& opt) {
  std::vector<CeilingFigures> out;
  {
    test::MosquittoBroker mosquitto;
    out.push_back(measure_ceiling("mosquitto", broker_set(mosquitto), opt));
  }
  for (int nodes : {1, 3}) {
    check_stop();
    std::cerr << "ceiling: starting a " << nodes << "-node NATS cluster...\n";
    test::NatsCluster nats(nodes, opt.partitions);
    out.push_back(measure_ceiling("nats-" + std::to_string(nodes) + "-node", broker_set(nats), opt));
  }
  for (auto& c : out) c.ratio = c.messages_per_s / out.front().messages_per_s;
  return out;
}

void print_ceiling(const std::vector<CeilingFigures>& cs, const Options& opt) {
  std::printf(
      "\n3. Broker ceiling: one Paho publisher (child process, QoS 1, window %zu) -> broker -> one Paho subscriber "
      "(QoS 1), %zu messages of %zu bytes after a warm-up.\n",
      opt.ceiling_window, opt.ceiling_messages, opt.ceiling_bytes);
  std::printf("\n%-15s %-17s %9s %6s %10s %9s %5s %9s %9s %10s\n", "broker", "path", "msgs/s", "ratio", "publish",
              "received", "dups", "broker", "publisher", "subscriber");
  std::printf("%-15s %-17s %9s %6s %10s %9s %5s %9s %9s %10s\n", "", "", "end to end", "/mosq", "msgs/s (ack)", "", "",
              "CPU %", "CPU %", "CPU %");
  for (const auto& c : cs)
    std::printf("%-15s %-17s %9.0f %6.2f %10.0f %9zu %5zu %9.0f %9.0f %10.0f\n", c.broker.c_str(), c.path.c_str(),
                c.messages_per_s, c.ratio, c.publish_messages_per_s, c.received, c.duplicates, c.broker_cpu_percent,
                c.publisher_cpu_percent, c.subscriber_cpu_percent);
  std::printf(
      "\nmsgs/s end to end = distinct messages received / (last received - first published); publish = messages /\n"
      "(last PUBACK - first publish). broker CPU %% is the broker's processes together (every node), of one core.\n");
}

}  // namespace postwatch::bench
