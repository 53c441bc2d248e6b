#include "cluster_bench_aggregators.hpp"

#include "postwatch/clock.hpp"

#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <deque>
#include <fstream>
#include <stdexcept>

namespace postwatch::bench {

using namespace std::chrono_literals;

// ---------------------------------------------------------------- AggregatorGroup

AggregatorGroup::AggregatorGroup(const fs::path& binary, const BrokerSet& brokers, const std::string& group, int count,
                                 const Options& opt)
    : clustered_(!brokers.nats.empty()), partitions_(opt.partitions) {
  for (int i = 0; i < count; ++i) {
    Instance in{group + "-" + std::to_string(i + 1),
                test::free_port(),
                dir_.path() / (std::to_string(i + 1) + ".log"),
                {},
                nullptr};
    // Instance i talks MQTT (births, heartbeats, confirmations) to node i's listener first; the
    // other nodes' follow, so it can reconnect elsewhere when that node is down.
    std::string uris;
    for (std::size_t k = 0; k < brokers.mqtt.size(); ++k)
      uris += (k ? "," : "") + brokers.mqtt[(static_cast<std::size_t>(i) + k) % brokers.mqtt.size()];
    in.argv = {binary.string(), "--broker", uris, "--client-id", in.id};
    in.argv.insert(in.argv.end(), {"--data-dir", (dir_.path() / in.id).string()});
    in.argv.insert(in.argv.end(), {"--catalogue", test::catalogue_path().string()});
    in.argv.insert(in.argv.end(), {"--http-port", std::to_string(in.http_port)});
    if (clustered_)
      in.argv.insert(in.argv.end(), {"--cluster-group", group, "--instance-id", in.id, "--nats", brokers.nats,
                                     "--nats-replicas", std::to_string(std::min<std::size_t>(3, brokers.mqtt.size())),
                                     "--nats-partitions", std::to_string(opt.partitions), "--lease-ms",
                                     std::to_string(opt.lease_ms), "--keys-dir", brokers.keys_dir});
    instances_.push_back(std::move(in));
  }
  for (std::size_t i = 0; i < instances_.size(); ++i) start(i);
}

AggregatorGroup::~AggregatorGroup() {
  // A clean leave (a last snapshot, the leases given up); the destructor SIGKILLs stragglers.
  for (auto& in : instances_)
    if (in.proc) in.proc->signal(SIGTERM);
  // Interrupted, do not wait long: the ChildProcess destructor SIGKILLs what is left.
  const auto deadline = Clock::now() + (g_stop ? 2s : 15s);
  for (auto& in : instances_)
    if (in.proc)
      in.proc->wait(std::chrono::duration_cast<std::chrono::milliseconds>(
          std::max<Clock::duration>(deadline - Clock::now(), Clock::duration::zero())));
}

void AggregatorGroup::start(std::size_t i) {
  auto& in = instances_[i];
  in.proc = std::make_unique<test::ChildProcess>(in.argv, in.log);
}

void AggregatorGroup::kill(std::size_t i) {
  auto& in = instances_[i];
  in.proc->signal(SIGKILL);
  in.proc->wait(5s);
  std::ofstream(in.log, std::ios::app) << "---- postwatch-bench-cluster: SIGKILLed here ----\n";
}

json AggregatorGroup::get(std::size_t i, const std::string& target) {
  auto r = test::http_get(instances_[i].http_port, target);
  return r.status == 200 ? json::parse(r.body, nullptr, false) : json();
}

void AggregatorGroup::check_running(std::size_t i) {
  auto& in = instances_[i];
  if (!in.proc->running()) throw std::runtime_error("aggregator " + in.id + " exited:\n" + log_tail(in.log));
}

bool AggregatorGroup::settled(const std::vector<std::size_t>& which) {
  std::vector<int> holders(partitions_, 0);
  for (auto i : which) {
    check_running(i);
    if (test::http_get(instances_[i].http_port, "/readyz").status != 200) return false;
    if (!clustered_) continue;
    auto c = get(i, "/api/v1/cluster");
    if (!c.is_object() || !c.value("ready", false) || c["members"].size() != which.size()) return false;
    for (const auto& p : c["partitions"]["held"]) {
      auto n = p.get<std::size_t>();
      if (n < holders.size()) holders[n] += 1;
    }
  }
  return !clustered_ || std::all_of(holders.begin(), holders.end(), [](int h) { return h == 1; });
}

std::vector<std::size_t> AggregatorGroup::all() const {
  std::vector<std::size_t> v;
  for (std::size_t i = 0; i < instances_.size(); ++i) v.push_back(i);
  return v;
}

void AggregatorGroup::wait_settled(std::chrono::seconds timeout) {
  bool ok = test::wait_until(
      [&] {
        check_stop();
        return settled(all());
      },
      timeout, 100ms);
  if (!ok)
    throw std::runtime_error("aggregators not settled within " + std::to_string(timeout.count()) + " s:\n" +
                             diagnostics());
}

std::optional<std::uint64_t> AggregatorGroup::events_accepted() {
  std::uint64_t sum = 0;
  for (std::size_t i = 0; i < instances_.size(); ++i) {
    check_running(i);
    auto stats = get(i, "/api/v1/stats");
    if (!stats.is_object()) return std::nullopt;
    sum += stats.value("events_accepted", std::uint64_t{0});
  }
  return sum;
}

std::string AggregatorGroup::diagnostics() {
  std::string out;
  for (std::size_t i = 0; i < instances_.size(); ++i) {
    auto c = get(i, "/api/v1/cluster"), s = get(i, "/api/v1/stats");
    out += instances_[i].id + ": events_accepted " + (s.is_object() ? s["events_accepted"].dump() : "?") +
           ", cluster " +
           (c.is_object() && c.contains("partitions") ? json{{"ready", c["ready"]},
                                                             {"members", c["members"]},
                                                             {"partitions", c["partitions"]},
                                                             {"counters", c["counters"]},
                                                             {"problem", c["problem"]}}
                                                            .dump()
                                                      : "-") +
           "\n" + log_tail(instances_[i].log, 800) + "\n";
  }
  return out;
}

LogProblems AggregatorGroup::log_problems() const {
  LogProblems p;
  for (const auto& in : instances_) scan_log(in.log, p, marks_.count(in.id) ? marks_.at(in.id) : 0);
  return p;
}

void AggregatorGroup::mark_logs() {
  for (const auto& in : instances_) {
    std::error_code ec;
    auto size = fs::file_size(in.log, ec);
    marks_[in.id] = ec ? 0 : size;
  }
}

void AggregatorGroup::save_logs(const Options& opt, const std::string& prefix, const test::NatsCluster* nats) const {
  if (opt.logs_dir.empty()) return;
  fs::create_directories(opt.logs_dir);
  for (const auto& in : instances_)
    fs::copy_file(in.log, fs::path(opt.logs_dir) / (prefix + "-" + in.id + ".log"),
                  fs::copy_options::overwrite_existing);
  for (int i = 0; nats && i < nats->size(); ++i)
    std::ofstream(fs::path(opt.logs_dir) / (prefix + "-nats-n" + std::to_string(i + 1) + ".log")) << nats->log(i);
}

// ---------------------------------------------------------------- LoadPublisher

LoadPublisher::LoadPublisher(const std::vector<std::string>& uris, std::size_t connections, std::size_t window,
                             const std::string& tag)
    : window_(window) {
  std::vector<mqtt::token_ptr> connecting;
  for (std::size_t c = 0; c < connections; ++c) {
    clients_.push_back(std::make_unique<mqtt::async_client>(
        uris[c % uris.size()], "pw-bench-" + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(c)));
    connecting.push_back(clients_.back()->connect(
        mqtt::connect_options_builder().clean_session(true).max_inflight(static_cast<int>(window * 2)).finalize()));
  }
  for (auto& t : connecting) t->wait();
}

LoadPublisher::~LoadPublisher() {
  stop_flag_ = true;
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  for (auto& c : clients_) try {
      c->disconnect(500)->wait_for(1s);
    } catch (const mqtt::exception&) {
    }
}

PublishResult LoadPublisher::run(const EventMaker& maker, const std::vector<BenchAgent>& agents, std::size_t batch,
                                 std::chrono::duration<double> length) {
  start(maker, agents, batch, 0, Clock::now() + 20ms + std::chrono::duration_cast<Clock::duration>(length));
  return finish();
}

void LoadPublisher::start_steady(const EventMaker& maker, const std::vector<BenchAgent>& agents, std::size_t batch,
                                 double rate) {
  start(maker, agents, batch, rate, Clock::time_point::max());
}

PublishResult LoadPublisher::stop() {
  stop_flag_ = true;
  return finish();
}

std::uint64_t LoadPublisher::sent() const {
  std::uint64_t n = 0;
  for (const auto& s : sent_) n += s->load();
  return n;
}

void LoadPublisher::start(const EventMaker& maker, const std::vector<BenchAgent>& agents, std::size_t batch,
                          double rate, Clock::time_point deadline) {
  start_ = Clock::now() + 20ms;  // every connection starts together
  stop_flag_ = false;
  sent_.clear(), bytes_.clear();
  agent_sent_.assign(agents.size(), 0);  // each agent is one thread's
  errors_.assign(clients_.size(), "");
  for (std::size_t c = 0; c < clients_.size(); ++c) {
    sent_.push_back(std::make_unique<std::atomic<std::uint64_t>>(0));
    bytes_.push_back(std::make_unique<std::atomic<std::uint64_t>>(0));
  }
  for (std::size_t c = 0; c < clients_.size(); ++c)
    threads_.emplace_back([this, &maker, &agents, batch, rate, deadline, c] {
      std::deque<mqtt::delivery_token_ptr> inflight;
      const double per_connection = rate / static_cast<double>(clients_.size());
      std::this_thread::sleep_until(start_);
      auto live = [&] { return Clock::now() < deadline && !stop_flag_ && !g_stop; };
      try {
        std::uint64_t n = 0;
        for (std::uint64_t round = 0; live(); ++round)
          for (std::size_t a = c; a < agents.size() && live(); a += clients_.size()) {
            if (per_connection > 0) {
              auto due = start_ + std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(static_cast<double>(n) / per_connection));
              while (Clock::now() < due && live())
                std::this_thread::sleep_for(std::min<Clock::duration>(due - Clock::now(), 20ms));
              if (!live()) break;
            }
            const auto now = now_utc_ms();
            auto bytes = encode_bench_batch(maker, agents[a], batch, round * batch + 1,
                                            (round * agents.size() + a) * batch, now, now);
            if (inflight.size() >= window_) {
              inflight.front()->wait();
              inflight.pop_front();
            }
            inflight.push_back(clients_[c]->publish(agents[a].topic, bytes.data(), bytes.size(), 1, false));
            sent_[c]->fetch_add(1);
            agent_sent_[a] += 1;
            bytes_[c]->fetch_add(bytes.size());
            n += 1;
          }
        for (auto& t : inflight) t->wait();
      } catch (const std::exception& e) {
        errors_[c] = e.what();
      }
    });
}

PublishResult LoadPublisher::finish() {
  for (auto& t : threads_) t.join();
  threads_.clear();
  check_stop();
  for (const auto& e : errors_)
    if (!e.empty()) throw std::runtime_error("publisher: " + e);
  std::uint64_t bytes = 0;
  for (const auto& b : bytes_) bytes += b->load();
  return {sent(), bytes, start_, Clock::now()};
}

std::vector<BenchAgent> make_agents(const EventMaker& maker, const std::string& tag, const Options& opt) {
  std::vector<BenchAgent> agents;
  for (std::size_t a = 0; a < maker.catalogue().posts().size() * opt.agents_per_post; ++a)
    agents.push_back(bench_agent(maker.catalogue(), tag, a));
  return agents;
}

}  // namespace postwatch::bench
