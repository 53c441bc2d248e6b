// postwatch-bench-fleet: the number of live agents as a measured dimension. N agents (the real
// agent code, delivery confirmation on) in child processes of this binary, one real Mosquitto,
// one real postwatch-aggregator process; a fixed total event rate spread over the fleet. Prints,
// per N: accept -> confirm latency p50/p99 (as the agents see it), events never confirmed after
// the drain, the agents' backlog at the end, confirmations per second and per received batch,
// broker messages per second in and out, the aggregator's CPU and RSS (and bytes per agent).
// Never asserts timing (README.md); the command and figures go in docs/performance.md.
#include "fleet_bench.hpp"
#include "proc_stats.hpp"
#include "support/test_support.hpp"

#include <mqtt/async_client.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

namespace {
using namespace postwatch;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using json = nlohmann::json;
namespace fs = std::filesystem;
using namespace postwatch::bench::fleet;

std::atomic<bool> g_stop{false};

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  auto k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
  return v[k];
}

// Mosquitto's own message counters ($SYS, every second with sys_interval 1).
class BrokerCounters {
 public:
  explicit BrokerCounters(const std::string& uri) : client_(uri, "fleet-bench-sys") {
    client_.set_message_callback([this](mqtt::const_message_ptr m) {
      auto v = std::strtoull(m->get_payload_str().c_str(), nullptr, 10);
      (m->get_topic().ends_with("received") ? received_ : sent_) = v;
    });
    client_.connect()->wait();
    client_.subscribe("$SYS/broker/messages/+", 0)->wait();
  }
  ~BrokerCounters() {
    try {
      client_.disconnect()->wait_for(1s);
    } catch (const mqtt::exception&) {
    }
  }
  std::uint64_t received() const { return received_; }
  std::uint64_t sent() const { return sent_; }

 private:
  mqtt::async_client client_;
  std::atomic<std::uint64_t> received_{0}, sent_{0};
};

json stats(unsigned short port) {
  auto r = test::http_get(port, "/api/v1/stats");
  return r.status == 200 ? json::parse(r.body, nullptr, false) : json();
}

json run_fleet(std::size_t n, double rate, double seconds, double drain, std::size_t per_process,
               const std::string& outbound_window, double kill_at) {
  test::TempDir dir;
  test::MosquittoBroker broker("sys_interval 1\n");
  const auto agg_binary = test::binary_dir() / "aggregator" / "postwatch-aggregator";
  const unsigned short http_port = test::free_port();
  // The same store and MQTT session each time: a restart after --kill-aggregator-at resumes both.
  std::string logs;  // of aggregators that are gone
  auto start_aggregator = [&](const std::string& log_name) {
    auto p = std::make_unique<test::ChildProcess>(
        std::vector<std::string>{agg_binary.string(), "--broker", broker.uri(), "--client-id", "fleet-aggregator",
                                 "--data-dir", (dir.path() / "store").string(), "--catalogue",
                                 test::catalogue_path().string(), "--http-port", std::to_string(http_port),
                                 "--outbound-window", outbound_window},
        dir.path() / log_name);
    if (!test::wait_until([&] { return test::http_get(http_port, "/readyz").status == 200 || !p->running(); }, 60s) ||
        !p->running())
      throw std::runtime_error("aggregator not ready:\n" + p->log());
    return p;
  };
  auto agg = start_aggregator("aggregator.log");
  std::string agg_pid = std::to_string(agg->pid());
  const std::string broker_pid = bench::find_child("mosquitto");
  const long rss_idle = bench::status_kb(agg_pid, "VmRSS");
  BrokerCounters sys(broker.uri());

  const std::size_t processes = (n + per_process - 1) / per_process;
  std::vector<std::unique_ptr<test::ChildProcess>> children;
  const auto self = fs::read_symlink("/proc/self/exe").string();
  for (std::size_t k = 0; k < processes; ++k) {
    const std::size_t first = k * n / processes, last = (k + 1) * n / processes;
    const double share = rate * static_cast<double>(last - first) / static_cast<double>(n);
    children.push_back(std::make_unique<test::ChildProcess>(
        std::vector<std::string>{self, "agents", "--broker", broker.uri(), "--dir", dir.path().string(), "--index",
                                 std::to_string(k), "--first", std::to_string(first), "--count",
                                 std::to_string(last - first), "--rate", std::to_string(share), "--seconds",
                                 std::to_string(seconds), "--drain", std::to_string(drain)},
        dir.path() / ("agents-" + std::to_string(k) + ".log"), true));
  }
  const auto connect_started = Clock::now();
  bool ready = test::wait_until(
      [&] {
        for (std::size_t k = 0; k < processes; ++k) {
          if (!children[k]->running()) throw std::runtime_error("agents process exited:\n" + children[k]->log());
          if (!fs::exists(dir.path() / ("agents-" + std::to_string(k) + ".ready"))) return false;
        }
        return !g_stop;
      },
      330s, 100ms);
  if (!ready) throw std::runtime_error("agents did not connect");
  const double connect_s = std::chrono::duration<double>(Clock::now() - connect_started).count();
  std::this_thread::sleep_for(2s);  // births and first heartbeats settle
  const long rss_connected = bench::status_kb(agg_pid, "VmRSS");

  const json s0 = stats(http_port);
  const auto rx0 = sys.received(), tx0 = sys.sent();
  const double cpu0 = bench::proc_stat(agg_pid).cpu_s, bcpu0 = bench::proc_stat(broker_pid).cpu_s;
  const auto t0 = Clock::now();
  for (auto& c : children) c->write_stdin("go\n");
  if (kill_at > 0 && kill_at < seconds) {
    // A crash mid-stream: what it had not committed, the agents still hold and resend.
    std::this_thread::sleep_for(std::chrono::duration<double>(kill_at));
    agg->signal(SIGKILL);
    agg->wait(10s);
    logs += agg->log();
    std::cerr << "fleet: aggregator SIGKILLed at " << kill_at << " s; restarting it\n";
    agg = start_aggregator("aggregator-2.log");
    agg_pid = std::to_string(agg->pid());
    std::this_thread::sleep_until(t0 +
                                  std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds)));
  } else {
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  }
  const bool killed = kill_at > 0 && kill_at < seconds;
  const double window = std::chrono::duration<double>(Clock::now() - t0).count();
  const double cpu1 = bench::proc_stat(agg_pid).cpu_s, bcpu1 = bench::proc_stat(broker_pid).cpu_s;
  const auto rx1 = sys.received(), tx1 = sys.sent();
  const json s1 = stats(http_port);
  const long rss_loaded = bench::status_kb(agg_pid, "VmRSS");

  json merged{{"accepted", 0}, {"rejected", 0}, {"confirmed", 0}, {"backlog", 0}, {"resend_requests", 0}};
  std::vector<double> latency;
  long agents_rss_kib = 0;
  for (std::size_t k = 0; k < processes; ++k) {
    const auto file = dir.path() / ("agents-" + std::to_string(k) + ".json");
    if (!test::wait_until([&] { return fs::exists(file) || !children[k]->running(); },
                          std::chrono::milliseconds(static_cast<long>((drain + 60) * 1000)), 100ms) ||
        !fs::exists(file))
      throw std::runtime_error("agents process " + std::to_string(k) + " gave no result:\n" + children[k]->log());
    std::ifstream in(file);
    json r = json::parse(in);
    for (const char* key : {"accepted", "rejected", "confirmed", "backlog", "resend_requests"})
      merged[key] = merged[key].get<std::uint64_t>() + r[key].get<std::uint64_t>();
    for (double l : r["latency_ms"]) latency.push_back(l);
    agents_rss_kib += r.value("rss_kib", 0L);
  }
  const std::string log = logs + agg->log();
  std::size_t warnings = 0, buffer_full = 0;
  for (std::size_t p = 0; (p = log.find(" warning ", p)) != std::string::npos; ++p) ++warnings;
  for (std::size_t p = 0; (p = log.find("No more messages can be buffered", p)) != std::string::npos; ++p)
    ++buffer_full;

  auto delta = [&](const char* a, const char* b = nullptr) {
    auto get = [&](const json& s) {
      const json& v = b ? s.at(a).at(b) : s.at(a);
      return v.get<double>();
    };
    // Counters start again in a restarted aggregator: no deltas across a kill.
    return s1.is_object() && s0.is_object() && !killed ? get(s1) - get(s0) : -1.0;
  };
  const double confirms = delta("outbound_published", "confirm"), batches = delta("batches_accepted");
  json row = merged;
  row["agents"] = n;
  row["agent_processes"] = processes;
  row["rate_target"] = rate;
  row["seconds"] = window;
  row["connect_s"] = connect_s;
  row["never_confirmed"] = merged["accepted"].get<std::uint64_t>() - merged["confirmed"].get<std::uint64_t>();
  row["latency_p50_ms"] = percentile(latency, 0.50);
  row["latency_p99_ms"] = percentile(latency, 0.99);
  row["latency_max_ms"] = latency.empty() ? 0 : *std::max_element(latency.begin(), latency.end());
  row["events_per_s"] = merged["accepted"].get<double>() / window;
  row["batches_per_s"] = batches / window;
  row["confirms_per_s"] = confirms / window;
  row["confirms_per_batch"] = batches > 0 ? confirms / batches : 0;
  row["broker_in_per_s"] = static_cast<double>(rx1 - rx0) / window;
  row["broker_out_per_s"] = static_cast<double>(tx1 - tx0) / window;
  row["aggregator_cpu_percent"] = 100 * (cpu1 - cpu0) / window;
  row["broker_cpu_percent"] = 100 * (bcpu1 - bcpu0) / window;
  row["aggregator_rss_mib"] = static_cast<double>(rss_loaded) / 1024;
  row["aggregator_bytes_per_agent"] = static_cast<double>(rss_connected - rss_idle) * 1024 / static_cast<double>(n);
  row["agents_rss_bytes_per_agent"] = static_cast<double>(agents_rss_kib) * 1024 / static_cast<double>(n);
  row["aggregator_log_warnings"] = warnings;
  row["aggregator_log_buffer_full"] = buffer_full;
  for (const char* key : {"outbound_dropped", "outbound_waiting", "outbound_in_flight", "confirm_waiting_for_store",
                          "store_pending_events", "ingest_queued_messages", "confirm_resend_requests"})
    row[key] = s1.is_object() ? s1.value(key, json()) : json();
  std::vector<std::string> warning_lines;
  for (std::size_t p = 0; (p = log.find(" warning ", p)) != std::string::npos && warning_lines.size() < 5; ++p) {
    auto b = log.rfind('\n', p), e = log.find('\n', p);
    warning_lines.push_back(log.substr(b == std::string::npos ? 0 : b + 1, e == std::string::npos ? e : e - b - 1));
  }
  row["aggregator_log_first_warnings"] = warning_lines;
  row["outbound_coalesced"] = s1.is_object() ? s1["outbound_coalesced"] : json();
  row["aggregator_killed_at_s"] = killed ? kill_at : 0.0;
  if (killed) row["aggregator_cpu_percent"] = -1.0;  // two processes: not one figure
  agg->signal(SIGTERM);
  agg->wait(10s);
  return row;
}

int parent_main(int argc, char** argv) {
  raise_file_limit();
  std::signal(SIGINT, [](int) { g_stop = true; });
  const bool quick = flag(argc, argv, "--quick");
  const double rate = std::stod(arg(argc, argv, "--rate", "2000"));
  const double seconds = std::stod(arg(argc, argv, "--seconds", quick ? "15" : "60"));
  const double drain = std::stod(arg(argc, argv, "--drain", "10"));
  const std::size_t per_process = std::stoul(arg(argc, argv, "--per-process", "250"));
  const std::string outbound_window = arg(argc, argv, "--outbound-window", "256");
  const double kill_at = std::stod(arg(argc, argv, "--kill-aggregator-at", "0"));
  std::vector<std::size_t> fleets;
  std::stringstream list(arg(argc, argv, "--agents", quick ? "142,1000" : "142,1000,10000"));
  for (std::string x; std::getline(list, x, ',');) fleets.push_back(std::stoul(x));

  json rows = json::array();
  std::size_t largest_ok = 0;
  for (auto n : fleets) {
    std::cerr << "fleet: " << n << " agents, " << rate << " events/s in all, " << seconds << " s, drain " << drain
              << " s ...\n";
    json r = run_fleet(n, rate, seconds, drain, per_process, outbound_window, kill_at);
    rows.push_back(r);
    std::printf(
        "%6zu agents (%zu proc, connected in %.0f s): %7.0f events/s accepted, p50 %6.0f ms p99 %6.0f ms max %6.0f "
        "ms | never confirmed %llu, backlog %llu, rejected %llu | confirms %6.0f/s (%.2f per batch) | broker in "
        "%6.0f/s out %6.0f/s, CPU %3.0f%% | aggregator CPU %3.0f%%, RSS %.0f MiB, %.0f B/agent | agents %.0f KiB/agent "
        "| log warnings %zu, -12: %zu\n",
        n, r["agent_processes"].get<std::size_t>(), r["connect_s"].get<double>(), r["events_per_s"].get<double>(),
        r["latency_p50_ms"].get<double>(), r["latency_p99_ms"].get<double>(), r["latency_max_ms"].get<double>(),
        static_cast<unsigned long long>(r["never_confirmed"].get<std::uint64_t>()),
        static_cast<unsigned long long>(r["backlog"].get<std::uint64_t>()),
        static_cast<unsigned long long>(r["rejected"].get<std::uint64_t>()), r["confirms_per_s"].get<double>(),
        r["confirms_per_batch"].get<double>(), r["broker_in_per_s"].get<double>(), r["broker_out_per_s"].get<double>(),
        r["broker_cpu_percent"].get<double>(), r["aggregator_cpu_percent"].get<double>(),
        r["aggregator_rss_mib"].get<double>(), r["aggregator_bytes_per_agent"].get<double>(),
        r["agents_rss_bytes_per_agent"].get<double>() / 1024, r["aggregator_log_warnings"].get<std::size_t>(),
        r["aggregator_log_buffer_full"].get<std::size_t>());
    std::printf("        at the end of the window: %s\n",
                json{{"outbound_waiting", r["outbound_waiting"]},
                     {"outbound_in_flight", r["outbound_in_flight"]},
                     {"confirm_waiting_for_store", r["confirm_waiting_for_store"]},
                     {"store_pending_events", r["store_pending_events"]},
                     {"ingest_queued_messages", r["ingest_queued_messages"]},
                     {"resend_requests", r["confirm_resend_requests"]},
                     {"outbound_dropped", r["outbound_dropped"]}}
                    .dump()
                    .c_str());
    for (const auto& w : r["aggregator_log_first_warnings"])
      std::printf("        log: %s\n", w.get<std::string>().c_str());
    std::fflush(stdout);
    if (r["never_confirmed"].get<std::uint64_t>() == 0 && r["latency_p99_ms"].get<double>() <= 5000)
      largest_ok = std::max(largest_ok, n);
    if (g_stop) break;
  }
  if (kill_at > 0)
    std::printf(
        "the aggregator was SIGKILLed at %.0f s and restarted: latency includes the outage; confirms, CPU "
        "and broker rates span two processes and are not given\n",
        kill_at);
  else
    std::printf("largest fleet run here with every event confirmed and p99 accept->confirm <= 5 s: %zu agents\n",
                largest_ok);
  if (auto file = arg(argc, argv, "--json", ""); !file.empty())
    std::ofstream(file) << json{{"fleets", rows}, {"largest_ok", largest_ok}}.dump(1) << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc > 1 && std::string(argv[1]) == "agents") return agents_main(argc, argv);
    if (flag(argc, argv, "--help")) {
      std::cout << "postwatch-bench-fleet [--agents 142,1000,10000] [--rate 2000] [--seconds 60] [--drain 10]\n"
                   "                      [--per-process 250] [--outbound-window 256]\n"
                   "                      [--kill-aggregator-at S] [--quick] [--json FILE]\n"
                   "N live agents (real agent code, delivery confirmation on) in processes of --per-process agents,\n"
                   "a real Mosquitto and postwatch-aggregator; --rate events/s in all. See tools/bench/README.md.\n";
      return 0;
    }
    return parent_main(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "postwatch-bench-fleet: " << e.what() << "\n";
    return 1;
  }
}
