// postwatch-bench-cluster: aggregator throughput with 1, 2 and 3 postwatch-aggregator
// processes sharing the load as a cluster (docs/scale-out.md), against one plain instance,
// over one real Mosquitto on loopback. Prints a table (optionally JSON) with each
// process's CPU and RSS and names the busiest; never asserts timing. See README.md.
//
// The load comes from this process (Paho, QoS 1, a few connections with a bounded window),
// not from the aggregators' processes, so the aggregators' CPU figures are theirs alone.
#include "bench_events.hpp"
#include "postwatch/catalogue.hpp"
#include "postwatch/clock.hpp"
#include "proc_stats.hpp"
#include "support/test_support.hpp"

#include <mqtt/async_client.h>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <deque>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {
using namespace postwatch;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using json = nlohmann::json;
namespace fs = std::filesystem;

std::atomic<bool> g_stop{false};
void check_stop() {
  if (g_stop) throw std::runtime_error("interrupted");
}
double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// ---------------------------------------------------------------- /proc readers

double cpu_seconds(const std::string& pid) { return bench::proc_stat(pid).cpu_s; }

// Busy CPU seconds of the whole machine (every core, every process), from /proc/stat.
double machine_busy_seconds() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  double v[8] = {};  // user nice system idle iowait irq softirq steal
  in >> cpu;
  for (double& x : v) in >> x;
  return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

double rss_mib(const std::string& pid) {
  long kb = bench::status_kb(pid, "VmRSS");
  return kb < 0 ? 0 : static_cast<double>(kb) / 1024;
}

std::string broker_pid() {
  auto pid = bench::find_child("mosquitto");
  if (pid.empty()) throw std::runtime_error("cannot find the mosquitto child process in /proc");
  return pid;
}

std::string log_tail(const fs::path& file, std::size_t bytes = 2000) {
  std::ifstream in(file);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return text.size() > bytes ? "..." + text.substr(text.size() - bytes) : text;
}

// ---------------------------------------------------------------- aggregators

// One configuration's aggregator processes, each with its own client id, data dir and port.
class AggregatorGroup {
 public:
  struct Instance {
    std::string id;
    unsigned short http_port;
    fs::path log;
    std::unique_ptr<test::ChildProcess> proc;
    std::string pid() const { return std::to_string(proc->pid()); }
  };

  // Without `clustered` an instance subscribes to every post (the single-instance baseline).
  AggregatorGroup(const fs::path& binary, const test::MosquittoBroker& broker, const std::string& group, int count,
                  bool clustered) {
    for (int i = 1; i <= count; ++i) {
      Instance in{group + "-" + std::to_string(i), test::free_port(), dir_.path() / (std::to_string(i) + ".log"), {}};
      std::vector<std::string> argv{binary.string(), "--broker", broker.uri(), "--client-id", in.id};
      argv.insert(argv.end(), {"--data-dir", (dir_.path() / in.id).string(), "--catalogue", test::catalogue_path()});
      argv.insert(argv.end(), {"--http-port", std::to_string(in.http_port)});
      if (clustered) argv.insert(argv.end(), {"--instance-id", in.id, "--cluster-group", group});
      in.proc = std::make_unique<test::ChildProcess>(argv, in.log);
      instances_.push_back(std::move(in));
    }
  }
  ~AggregatorGroup() {
    for (auto& in : instances_) in.proc->signal(SIGTERM);  // a clean leave; the destructor SIGKILLs stragglers
    for (auto& in : instances_) in.proc->wait(5s);
  }

  // Every instance answers /readyz; in a cluster each also sees every member ready and
  // the posts are fully owned, so no event waits in a backup buffer for a takeover.
  void wait_ready(bool clustered, std::size_t posts) {
    bool ok = test::wait_until(
        [&] {
          check_stop();
          std::size_t owned = 0;
          for (auto& in : instances_) {
            if (!in.proc->running()) throw std::runtime_error("aggregator " + in.id + " exited:\n" + log_tail(in.log));
            if (test::http_get(in.http_port, "/readyz").status != 200) return false;
            if (!clustered) continue;
            auto c = get(in, "/api/v1/cluster");
            if (!c.is_object() || !c.value("ready", false) || c["members"].size() != instances_.size()) return false;
            for (const auto& m : c["members"])
              if (!m.value("ready", false)) return false;
            owned += c["posts"].value("owned", std::size_t{0});
          }
          return !clustered || owned == posts;
        },
        60s, 100ms);
    if (!ok) throw std::runtime_error("aggregators not ready within 60 s:\n" + diagnostics());
  }

  // Summed over the instances; nothing when one did not answer (a busy io thread: ask again).
  std::optional<std::uint64_t> events_accepted() {
    std::uint64_t sum = 0;
    for (auto& in : instances_) {
      if (!in.proc->running()) throw std::runtime_error("aggregator " + in.id + " exited:\n" + log_tail(in.log));
      auto stats = get(in, "/api/v1/stats");
      if (!stats.is_object()) return std::nullopt;
      sum += stats.value("events_accepted", std::uint64_t{0});
    }
    return sum;
  }

  std::string diagnostics() {
    std::string out;
    for (auto& in : instances_) {
      auto c = get(in, "/api/v1/cluster"), s = get(in, "/api/v1/stats");
      out += in.id + ": events_accepted " + (s.is_object() ? s["events_accepted"].dump() : "?") + ", cluster " +
             (c.is_object() ? json{{"ready", c["ready"]},
                                   {"members", c["members"].size()},
                                   {"posts", c["posts"]},
                                   {"counters", c["counters"]}}
                                  .dump()
                            : "?") +
             "\n" + log_tail(in.log, 800) + "\n";
    }
    return out;
  }

  std::vector<Instance>& instances() { return instances_; }

 private:
  static json get(Instance& in, const std::string& target) {
    auto r = test::http_get(in.http_port, target);
    return r.status == 200 ? json::parse(r.body, nullptr, false) : json();
  }
  test::TempDir dir_;
  std::vector<Instance> instances_;
};

// The aggregators connect with clean_session false: once stopped, the broker would keep
// queueing every later run's events for them. Taking their client ids over with a clean
// session drops those sessions.
void drop_sessions(const std::string& uri, const std::vector<std::string>& client_ids) {
  std::vector<std::unique_ptr<mqtt::async_client>> clients;
  std::vector<mqtt::token_ptr> tokens;
  for (const auto& id : client_ids) {
    clients.push_back(std::make_unique<mqtt::async_client>(uri, id));
    tokens.push_back(clients.back()->connect(mqtt::connect_options_builder().clean_session(true).finalize()));
  }
  for (auto& t : tokens) t->wait();
  for (auto& c : clients) c->disconnect(0)->wait();
}

// ---------------------------------------------------------------- load

struct PublishResult {
  std::uint64_t messages = 0;
  Clock::time_point start, end;  // first publish, last acknowledgement
};

// `connections` Paho clients, each with at most `window` unacknowledged QoS 1 messages.
class LoadPublisher {
 public:
  LoadPublisher(const std::string& uri, std::size_t connections, std::size_t window) : window_(window) {
    std::vector<mqtt::token_ptr> connecting;
    for (std::size_t c = 0; c < connections; ++c) {
      clients_.push_back(std::make_unique<mqtt::async_client>(
          uri, "pw-bench-cluster-pub-" + std::to_string(::getpid()) + "-" + std::to_string(c)));
      connecting.push_back(clients_.back()->connect(
          mqtt::connect_options_builder().clean_session(true).max_inflight(static_cast<int>(window * 2)).finalize()));
    }
    for (auto& t : connecting) t->wait();
  }
  ~LoadPublisher() {
    for (auto& c : clients_) try {
        c->disconnect(500)->wait_for(1s);
      } catch (const mqtt::exception&) {
      }
  }

  // Batches of `batch` events, encoded as they go out (dense seqs per agent, observed now),
  // as fast as the windows allow for `length`. An agent always uses the same connection,
  // so its batches arrive in order.
  PublishResult run(const bench::EventMaker& maker, const std::vector<bench::BenchAgent>& agents, std::size_t batch,
                    std::chrono::duration<double> length) {
    const auto start = Clock::now() + 20ms;  // every connection starts together
    const auto deadline = start + std::chrono::duration_cast<Clock::duration>(length);
    std::vector<std::uint64_t> sent(clients_.size(), 0);
    std::vector<std::string> errors(clients_.size());
    std::vector<std::thread> threads;
    for (std::size_t c = 0; c < clients_.size(); ++c)
      threads.emplace_back([&, c] {
        std::deque<mqtt::delivery_token_ptr> inflight;
        std::this_thread::sleep_until(start);
        try {
          for (std::uint64_t round = 0; Clock::now() < deadline && !g_stop; ++round)
            for (std::size_t a = c; a < agents.size() && Clock::now() < deadline; a += clients_.size()) {
              const auto now = now_utc_ms();
              auto bytes = bench::encode_bench_batch(maker, agents[a], batch, round * batch + 1,
                                                     (round * agents.size() + a) * batch, now, now);
              if (inflight.size() >= window_) {
                inflight.front()->wait();
                inflight.pop_front();
              }
              inflight.push_back(clients_[c]->publish(agents[a].topic, bytes.data(), bytes.size(), 1, false));
              sent[c] += 1;
            }
          for (auto& t : inflight) t->wait();
        } catch (const std::exception& e) {
          errors[c] = e.what();
        }
      });
    for (auto& t : threads) t.join();
    check_stop();
    for (const auto& e : errors)
      if (!e.empty()) throw std::runtime_error("publisher: " + e);
    PublishResult r{0, start, Clock::now()};
    for (auto n : sent) r.messages += n;
    return r;
  }

 private:
  std::size_t window_;
  std::vector<std::unique_ptr<mqtt::async_client>> clients_;
};

// ---------------------------------------------------------------- one configuration

struct ProcessFigures {
  std::string name;
  double cpu_percent = 0, rss_mib = 0;
};

struct RunFigures {
  std::string config;
  std::size_t instances = 0;
  std::uint64_t messages = 0, events = 0, applied = 0;
  double seconds = 0, publish_seconds = 0, events_per_s = 0, messages_per_s = 0, ratio = 0;
  ProcessFigures broker, publisher;
  std::vector<ProcessFigures> aggregators;
  double total_cpu_percent = 0;    // the processes above
  double machine_cpu_percent = 0;  // every process on the machine (this one shares it with a CI)
  std::string busiest;
  double busiest_cpu_percent = 0;
};

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(ProcessFigures, name, cpu_percent, rss_mib)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(RunFigures, config, instances, messages, events, applied, seconds, publish_seconds,
                                   events_per_s, messages_per_s, ratio, broker, publisher, aggregators,
                                   total_cpu_percent, machine_cpu_percent, busiest, busiest_cpu_percent)

struct Options {
  double seconds = 6;
  std::size_t connections = 4, window = 8, batch = 100, agents_per_post = 2;
  std::string json_file;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Options, seconds, connections, window, batch, agents_per_post)

RunFigures run_config(const std::string& config, int count, const Options& opt, const fs::path& binary,
                      const test::MosquittoBroker& broker, LoadPublisher& publisher, const bench::EventMaker& maker) {
  const bool clustered = config != "single";
  const std::string group = "bench" + std::to_string(::getpid()) + "-" + config;  // fresh per configuration
  std::cerr << config << ": starting " << count << " aggregator(s)...\n";
  std::vector<std::string> client_ids;
  RunFigures f;
  f.config = config, f.instances = static_cast<std::size_t>(count);
  {
    AggregatorGroup aggs(binary, broker, group, count, clustered);
    for (auto& in : aggs.instances()) client_ids.push_back(in.id);
    aggs.wait_ready(clustered, maker.catalogue().posts().size());

    std::vector<bench::BenchAgent> agents;  // agent a at post a % posts: every post, every instance
    for (std::size_t a = 0; a < maker.catalogue().posts().size() * opt.agents_per_post; ++a)
      agents.push_back(bench::bench_agent(maker.catalogue(), group, a));

    // CPU over the run: from just before the first publish until every event is applied.
    const std::string self = std::to_string(::getpid()), bpid = broker_pid();
    auto cpu_now = [&] {
      std::vector<double> v{machine_busy_seconds(), cpu_seconds(self), cpu_seconds(bpid)};
      for (auto& in : aggs.instances()) v.push_back(cpu_seconds(in.pid()));
      return v;
    };
    const auto cpu0 = cpu_now();
    std::cerr << config << ": publishing for " << opt.seconds << " s...\n";
    auto pub = publisher.run(maker, agents, opt.batch, std::chrono::duration<double>(opt.seconds));
    f.messages = pub.messages;
    f.events = pub.messages * opt.batch;

    // Each event is applied once, by its post's owner: the sum reaches what we published.
    auto last_progress = Clock::now();
    while (f.applied < f.events) {
      check_stop();
      if (auto n = aggs.events_accepted(); n && *n != f.applied) f.applied = *n, last_progress = Clock::now();
      if (f.applied >= f.events) break;
      if (Clock::now() - last_progress > 30s)
        throw std::runtime_error(config + ": no progress for 30 s at " + std::to_string(f.applied) + " of " +
                                 std::to_string(f.events) + " events applied:\n" + aggs.diagnostics());
      std::this_thread::sleep_for(50ms);
    }
    const auto done = Clock::now();
    const auto cpu1 = cpu_now();
    std::cerr << config << ": " << f.applied << " events applied " << seconds_between(pub.end, done)
              << " s after the last publish; stopping\n";
    if (f.applied > f.events)
      std::cerr << config << ": warning: " << f.applied << " events applied for " << f.events << " published\n";

    f.seconds = seconds_between(pub.start, done);
    f.publish_seconds = seconds_between(pub.start, pub.end);
    f.events_per_s = static_cast<double>(f.events) / f.seconds;
    f.messages_per_s = static_cast<double>(f.messages) / f.seconds;
    // The bench process is the publisher plus the completion polling after the last publish.
    auto pct = [&](std::size_t i) { return 100 * (cpu1[i] - cpu0[i]) / f.seconds; };
    f.machine_cpu_percent = pct(0);
    f.publisher = {"publisher (bench)", pct(1), rss_mib(self)};
    f.broker = {"mosquitto", pct(2), rss_mib(bpid)};
    for (std::size_t i = 0; i < aggs.instances().size(); ++i)
      f.aggregators.push_back({"aggregator " + aggs.instances()[i].id, pct(i + 3), rss_mib(aggs.instances()[i].pid())});
    std::vector<const ProcessFigures*> all{&f.publisher, &f.broker};
    for (const auto& p : f.aggregators) all.push_back(&p);
    for (const auto* p : all) {
      f.total_cpu_percent += p->cpu_percent;
      if (p->cpu_percent > f.busiest_cpu_percent) f.busiest = p->name, f.busiest_cpu_percent = p->cpu_percent;
    }
  }  // aggregators stopped
  drop_sessions(broker.uri(), client_ids);
  return f;
}

// ---------------------------------------------------------------- output

std::string fixed(double v, int precision = 0) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", precision, v);
  return buf;
}

void print_table(const std::vector<RunFigures>& runs, double cores) {
  std::printf("\n%-10s %4s %9s %7s %6s %7s %6s %7s %9s %-13s %6s %8s %-13s\n", "config", "inst", "events/s", "msgs/s",
              "ratio", "publish", "drain", "broker", "publisher", "aggregators", "ours", "machine", "agg RSS MiB");
  std::printf("%-10s %4s %9s %7s %6s %7s %6s %7s %9s %-13s %6s %8s %-13s\n", "", "", "applied", "", "/single", "s", "s",
              "CPU %", "CPU %", "CPU % each", "CPU %", "CPU %", "each");
  for (const auto& r : runs) {
    std::string cpu, rss;
    for (const auto& a : r.aggregators) {
      cpu += (cpu.empty() ? "" : "/") + fixed(a.cpu_percent);
      rss += (rss.empty() ? "" : "/") + fixed(a.rss_mib);
    }
    std::printf("%-10s %4zu %9.0f %7.0f %6.2f %7.1f %6.1f %7.0f %9.0f %-13s %6.0f %8.0f %-13s\n", r.config.c_str(),
                r.instances, r.events_per_s, r.messages_per_s, r.ratio, r.publish_seconds,
                r.seconds - r.publish_seconds, r.broker.cpu_percent, r.publisher.cpu_percent, cpu.c_str(),
                r.total_cpu_percent, r.machine_cpu_percent, rss.c_str());
  }
  std::printf(
      "\nCPU %% is of one core; the machine has %.0f (%.0f%%). ours = the processes in the table, machine = every\n"
      "process. drain = from the last publish acknowledgement until every event was applied.\n",
      cores, 100 * cores);
  for (const auto& r : runs) {
    // A drain means the aggregators fell behind what the broker accepted: the rate is theirs.
    const double drain = r.seconds - r.publish_seconds;
    const bool aggregators_limit = drain > std::max(0.25, 0.1 * r.publish_seconds);
    std::string why = r.busiest_cpu_percent >= 85 ? "it saturates a core"
                      : r.machine_cpu_percent >= 90 * cores
                          ? "no process saturates a core, but the machine's cores are full (" +
                                fixed(r.machine_cpu_percent - r.total_cpu_percent) + "% by other processes)"
                          : "the CPU is not the limit";
    std::printf("%-10s busiest: %s (%.0f%% of a core); %s; %s\n", (r.config + ":").c_str(), r.busiest.c_str(),
                r.busiest_cpu_percent,
                aggregators_limit ? "the aggregators fell behind (the rate is theirs)"
                                  : "the aggregators kept up: the publish path set the rate",
                why.c_str());
  }
}

const char* const kUsage = R"(postwatch-bench-cluster: aggregator throughput, 1 instance vs clusters of 1, 2, 3

usage: postwatch-bench-cluster [--quick] [--seconds S] [--connections N] [--window N] [--json FILE]
  --seconds S      publishing time per configuration (default 6; --quick 2)
  --connections N  publisher MQTT connections (default 4)
  --window N       unacknowledged QoS 1 messages per connection (default 8, the agent's default)
  --json FILE      also write every figure as JSON to FILE
Starts its own Mosquitto on 127.0.0.1 and build/aggregator/postwatch-aggregator processes,
and stops them again.
)";

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGINT, [](int) { g_stop = true; });
  std::signal(SIGTERM, [](int) { g_stop = true; });
  Options opt;
  try {
    bool quick = false, seconds_given = false;
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto value = [&] {
        if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
        return std::string(argv[++i]);
      };
      if (a == "--help" || a == "-h") return std::cout << kUsage, 0;
      if (a == "--quick") {
        quick = true;
      } else if (a == "--seconds") {
        opt.seconds = std::stod(value()), seconds_given = true;
        if (!(opt.seconds > 0 && opt.seconds <= 120)) throw std::invalid_argument("--seconds must be in (0, 120]");
      } else if (a == "--connections") {
        opt.connections = std::clamp<std::size_t>(std::stoul(value()), 1, 64);
      } else if (a == "--window") {
        opt.window = std::clamp<std::size_t>(std::stoul(value()), 1, 1000);
      } else if (a == "--json") {
        opt.json_file = value();
      } else {
        throw std::invalid_argument("unknown argument '" + a + "'");
      }
    }
    if (quick && !seconds_given) opt.seconds = 2;
  } catch (const std::exception& e) {
    std::cerr << "postwatch-bench-cluster: " << e.what() << "\n" << kUsage;
    return 2;
  }

  try {
    const fs::path binary = test::binary_dir() / "aggregator" / "postwatch-aggregator";
    if (!fs::exists(binary))
      throw std::runtime_error(binary.string() + " is missing: build it with `ninja -C " + test::binary_dir().string() +
                               " postwatch-aggregator`");
    const auto wall0 = Clock::now();
    const auto catalogue = IndicatorCatalogue::load(test::catalogue_path());
    const bench::EventMaker maker(catalogue);
    test::MosquittoBroker broker;
    std::cerr << "mosquitto on " << broker.uri() << "; connecting " << opt.connections << " publisher(s)...\n";
    LoadPublisher publisher(broker.uri(), opt.connections, opt.window);

    std::vector<RunFigures> runs;
    for (auto [config, count] :
         {std::pair<const char*, int>{"single", 1}, {"cluster-1", 1}, {"cluster-2", 2}, {"cluster-3", 3}}) {
      runs.push_back(run_config(config, count, opt, binary, broker, publisher, maker));
      runs.back().ratio = runs.back().events_per_s / runs.front().events_per_s;
    }
    std::ifstream loadavg("/proc/loadavg");
    std::string load;
    std::getline(loadavg, load);
    std::printf(
        "postwatch-bench-cluster: %zu publisher connection(s) x window %zu, batch %zu, %zu agents over %zu "
        "posts, %.1f s publishing per configuration (load average now: %s)\n",
        opt.connections, opt.window, opt.batch, catalogue.posts().size() * opt.agents_per_post,
        catalogue.posts().size(), opt.seconds, load.c_str());
    const double cores = std::max(1u, std::thread::hardware_concurrency());
    print_table(runs, cores);
    if (!opt.json_file.empty()) {
      json out{{"benchmark", "postwatch-bench-cluster"}, {"options", opt}, {"cores", cores}, {"load_average", load}};
      out["wall_seconds"] = seconds_between(wall0, Clock::now());
      out["runs"] = runs;
      std::ofstream(opt.json_file) << out.dump(2) << "\n";
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "postwatch-bench-cluster: " << e.what() << "\n";
    return g_stop ? 130 : 1;
  }
}
