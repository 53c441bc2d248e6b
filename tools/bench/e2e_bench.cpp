// postwatch-bench-e2e: Postwatch over a real Mosquitto on loopback, against the
// broker's own ceiling. Prints figures (a table on stdout, optionally JSON); it
// never asserts timing. See tools/bench/README.md.
//
//   1. ceiling   Paho publisher -> Mosquitto -> plain Paho subscriber, QoS 1
//   2. e2e       the same publisher -> Mosquitto -> an in-process AggregatorService
//   3. latency   observed_at (creation) -> applied, per event, at fixed rates
//   4. scaling   10 .. 10 000 distinct agents: throughput and memory
//
// Phases run in the order 1, 4, 2, 3: scaling gets the first aggregator of the process,
// so its memory figures are not blurred by heap the e2e runs leave behind.
//
// The publishers run in a child process (this binary, `publisher` mode, driven over
// its stdin) so that they do not share Paho's library threads with the subscriber
// or the aggregator. `postwatch-bench-e2e collectd` compares collectd's mqtt plugin
// with postwatch-agent at the same event rate.
#include "bench_events.hpp"
#include "postwatch/aggregator/aggregator_service.hpp"
#include "postwatch/catalogue.hpp"
#include "postwatch/clock.hpp"
#include "postwatch/enrolment.hpp"
#include "proc_stats.hpp"
#include "store/event_store.hpp"
#include "support/test_support.hpp"

#include <mqtt/async_client.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <functional>
#include <future>
#include <iostream>
#include <map>
#include <mutex>
#include <numeric>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#ifndef POSTWATCH_BENCH_CATALOGUE
#define POSTWATCH_BENCH_CATALOGUE "catalogue/gbvs.json"
#endif
#ifndef POSTWATCH_BENCH_AGENT_BINARY
#define POSTWATCH_BENCH_AGENT_BINARY "postwatch-agent"
#endif

namespace {
using namespace postwatch;
using bench::find_child;
using bench::proc_stat;
using bench::status_kb;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using json = nlohmann::json;
using ojson = nlohmann::ordered_json;
namespace fs = std::filesystem;

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop = true; }

struct Interrupted : std::runtime_error {
  Interrupted() : std::runtime_error("interrupted") {}
};
void check_stop() {
  if (g_stop) throw Interrupted();
}

// CLOCK_MONOTONIC: the same clock in every process of the machine.
std::int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

void sleep_checked(std::chrono::milliseconds d) {
  auto end = Clock::now() + d;
  while (Clock::now() < end) {
    check_stop();
    std::this_thread::sleep_for(std::min<Clock::duration>(end - Clock::now(), 20ms));
  }
}

// ---------------------------------------------------------------- /proc readers

double cpu_of(const std::string& pid) { return pid.empty() ? 0 : proc_stat(pid).cpu_s; }

// CPU seconds per thread of this process, by tid.
std::map<std::string, std::pair<std::string, double>> thread_cpu() {
  std::map<std::string, std::pair<std::string, double>> out;
  for (const auto& entry : fs::directory_iterator("/proc/self/task")) {
    const std::string tid = entry.path().filename().string();
    auto st = proc_stat("self/task/" + tid);
    if (st.ok) out[tid] = {st.comm, st.cpu_s};
  }
  return out;
}

// ---------------------------------------------------------------- results

class Report {
 public:
  void section(const std::string& key, const std::string& title) {
    key_ = key;
    rows_.push_back({title, "", ""});
    j_[key_] = ojson::object();
  }
  void add(const std::string& key, const std::string& label, double v, const std::string& unit, int precision = 0) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", precision, v);
    rows_.push_back({"  " + label, group(buf), unit});
    j_[key_][key] = std::isfinite(v) ? ojson(v) : ojson(nullptr);
  }
  void text(const std::string& key, const std::string& label, const std::string& v) {
    rows_.push_back({"  " + label, v, ""});
    j_[key_][key] = v;
  }
  void config(const std::string& key, const ojson& v) { j_["config"][key] = v; }
  void print(std::ostream& out) const {
    std::size_t w0 = 0, w1 = 0;
    for (const auto& r : rows_)
      if (!r[1].empty()) w0 = std::max(w0, r[0].size()), w1 = std::max(w1, r[1].size());
    for (const auto& r : rows_) {
      if (r[1].empty()) {
        out << "\n" << r[0] << "\n";
        continue;
      }
      out << r[0] << std::string(w0 + 2 - r[0].size(), ' ') << std::string(w1 - std::min(w1, r[1].size()), ' ') << r[1]
          << (r[2].empty() ? "" : " " + r[2]) << "\n";
    }
  }
  const ojson& json() const { return j_; }

 private:
  static std::string group(std::string s) {
    auto dot = s.find('.');
    std::string whole = s.substr(0, dot), frac = dot == std::string::npos ? "" : s.substr(dot);
    bool neg = !whole.empty() && whole[0] == '-';
    if (neg) whole.erase(0, 1);
    for (int i = static_cast<int>(whole.size()) - 3; i > 0; i -= 3) whole.insert(static_cast<std::size_t>(i), ",");
    return (neg ? "-" : "") + whole + frac;
  }
  std::string key_;
  std::vector<std::array<std::string, 3>> rows_;
  ojson j_ = ojson::object();
};

// Nearest-rank percentile of sorted values.
double percentile(const std::vector<std::int64_t>& sorted, double p) {
  if (sorted.empty()) return NAN;
  auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  return static_cast<double>(sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1]);
}

const char* const kUsage = R"(postwatch-bench-e2e — broker ceiling, Postwatch end to end, latency, scaling

usage: postwatch-bench-e2e [--quick] [--seconds S] [--phases LIST] [--connections N] [--inflight N] [--json FILE]
       postwatch-bench-e2e collectd [--rate N] [--json FILE]
  --seconds S      target length of each throughput run (default 4; --quick 1.5)
  --phases LIST    comma-separated subset of ceiling,e2e,signed,latency,scaling (default all;
                   signed: enrolled agents' signed batches against unsigned, batch 10 and 100)
  --connections N  publisher MQTT connections (default 4)
  --inflight N     unacknowledged QoS 1 messages per connection (default 8, the agent's default)
  --json FILE      also write the figures as one JSON object to FILE
  collectd         collectd's mqtt plugin vs postwatch-agent run, both fed N events/s (default 100)
Starts its own Mosquitto on 127.0.0.1 (free port, temporary directory) and stops it again.
)";

// ================================================================ publisher (child)

// Runs in the child: C connections, each with a window of W unacknowledged QoS 1
// messages. Reads "run <json>" lines on stdin, answers in the file the spec names.
int publisher_main(int argc, char** argv) {
  std::string broker, dir;
  std::size_t conns = 4, inflight = 8;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--broker") broker = argv[i + 1];
    if (a == "--dir") dir = argv[i + 1];
    if (a == "--connections") conns = std::stoul(argv[i + 1]);
    if (a == "--inflight") inflight = std::stoul(argv[i + 1]);
  }
  auto cat = IndicatorCatalogue::load(POSTWATCH_BENCH_CATALOGUE);
  bench::EventMaker maker(cat);
  std::vector<std::unique_ptr<mqtt::async_client>> clients;
  std::vector<mqtt::token_ptr> connecting;
  for (std::size_t c = 0; c < conns; ++c) {
    clients.push_back(std::make_unique<mqtt::async_client>(
        broker, "pw-bench-pub-" + std::to_string(::getpid()) + "-" + std::to_string(c)));
    auto opts = mqtt::connect_options_builder()
                    .clean_session(true)
                    .keep_alive_interval(20s)
                    .max_inflight(static_cast<int>(inflight * 2))  // as the agent sets it
                    .finalize();
    connecting.push_back(clients.back()->connect(opts));
  }
  for (auto& t : connecting) t->wait();
  std::ofstream(fs::path(dir) / "ready") << "ready\n";

  std::string line;
  while (std::getline(std::cin, line)) {
    if (line == "quit") break;
    if (line.rfind("run ", 0) != 0) continue;
    const json spec = json::parse(line.substr(4));
    const std::size_t batch = spec.at("batch"), agents = spec.at("agents"), messages = spec.at("messages");
    const double rate = spec.value("rate", 0.0);  // events/s; 0 = as fast as the window allows
    const std::uint64_t seq_start = spec.value("seq_start", 1ULL);
    const std::string tag = spec.at("tag");
    const std::size_t use = std::clamp<std::size_t>(spec.value("connections", conns), 1, conns);
    std::vector<bench::BenchAgent> ag;
    for (std::size_t a = 0; a < agents; ++a) ag.push_back(bench::bench_agent(cat, tag, a));
    // Enrolled agents (the "signed" phase): each batch signed with its agent's key.
    std::vector<std::optional<SigningKey>> keys(agents);
    if (spec.value("signed", false))
      for (std::size_t a = 0; a < agents; ++a) keys[a] = bench::bench_key(ag[a].id);
    auto signer = [&](std::size_t j) { return keys[j % agents] ? &*keys[j % agents] : nullptr; };
    // Message j: agent j % agents, that agent's (j / agents)-th batch; an agent's batches
    // all go over one connection, in order.
    std::vector<std::vector<std::size_t>> per_conn(conns);
    for (std::size_t j = 0; j < messages; ++j) per_conn[(j % agents) % use].push_back(j);
    auto first_seq = [&](std::size_t j) { return seq_start + (j / agents) * batch; };
    std::vector<std::vector<std::uint8_t>> payloads;
    auto e0 = Clock::now();
    if (rate <= 0) {
      payloads.resize(messages);
      const auto now = now_utc_ms();
      for (std::size_t j = 0; j < messages; ++j)
        payloads[j] =
            bench::encode_bench_batch(maker, ag[j % agents], batch, first_seq(j), j * batch, now, now, signer(j));
    }
    const double encode_s = seconds_since(e0);
    std::size_t payload_bytes = 0;
    for (const auto& p : payloads) payload_bytes += p.size();

    const auto t0 = Clock::now() + 20ms;  // every connection starts together
    const std::int64_t t0_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t0.time_since_epoch()).count();
    const std::int64_t t0_ms = now_utc_ms() + 20;
    std::vector<std::int64_t> end_ns(conns, 0), max_lag_us(conns, 0), errors(conns, 0), bytes(conns, 0);
    std::vector<std::thread> threads;
    for (std::size_t c = 0; c < conns; ++c) {
      threads.emplace_back([&, c] {
        auto& client = *clients[c];
        std::deque<mqtt::delivery_token_ptr> window;
        std::this_thread::sleep_until(t0);
        try {
          for (std::size_t j : per_conn[c]) {
            const bench::BenchAgent& a = ag[j % agents];
            std::vector<std::uint8_t> fresh;
            const std::vector<std::uint8_t>* p = nullptr;
            if (rate > 0) {
              // Burst creation: a batch's events are created together, observed_at = now.
              const auto due = t0 + std::chrono::nanoseconds(static_cast<std::int64_t>(
                                        1e9 * static_cast<double>(j) * static_cast<double>(batch) / rate));
              std::this_thread::sleep_until(due);
              max_lag_us[c] = std::max<std::int64_t>(
                  max_lag_us[c], std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - due).count());
              const auto now = now_utc_ms();
              fresh = bench::encode_bench_batch(maker, a, batch, first_seq(j), j * batch, now, now, signer(j));
              p = &fresh;
            } else {
              p = &payloads[j];
            }
            if (window.size() >= inflight) {
              window.front()->wait();
              window.pop_front();
            }
            window.push_back(client.publish(a.topic, p->data(), p->size(), 1, false));
            bytes[c] += static_cast<std::int64_t>(p->size());
          }
          for (auto& t : window) t->wait();
        } catch (const std::exception& e) {
          errors[c] += 1;
          std::cerr << "publisher connection " << c << ": " << e.what() << "\n";
        }
        end_ns[c] = steady_ns();
      });
    }
    for (auto& t : threads) t.join();
    json result{{"messages", messages},
                {"events", messages * batch},
                {"start_ns", t0_ns},
                {"start_ms", t0_ms},
                {"end_ns", *std::max_element(end_ns.begin(), end_ns.end())},
                {"max_lag_ms", static_cast<double>(*std::max_element(max_lag_us.begin(), max_lag_us.end())) / 1000},
                {"errors", std::accumulate(errors.begin(), errors.end(), std::int64_t{0})},
                {"payload_bytes", std::accumulate(bytes.begin(), bytes.end(), std::int64_t{0})},
                {"encode_s", encode_s}};
    const fs::path out = spec.at("out").get<std::string>();
    std::ofstream(out.string() + ".tmp") << result.dump() << "\n";
    fs::rename(out.string() + ".tmp", out);
  }
  for (auto& c : clients) {
    try {
      c->disconnect(500)->wait_for(1s);
    } catch (const mqtt::exception&) {
    }
  }
  return 0;
}

// The child, seen from the parent.
class Publisher {
 public:
  Publisher(const std::string& broker_uri, const fs::path& dir, std::size_t conns, std::size_t inflight)
      : dir_(make_dir(dir)),
        child_({fs::read_symlink("/proc/self/exe").string(), "publisher", "--broker", broker_uri, "--dir", dir.string(),
                "--connections", std::to_string(conns), "--inflight", std::to_string(inflight)},
               dir / "publisher.log", true) {
    if (!test::wait_until([&] { return fs::exists(dir / "ready") || !child_.running() || g_stop; }, 30s) ||
        !child_.running())
      throw std::runtime_error("publisher did not connect: " + child_.log());
    check_stop();
  }
  ~Publisher() {
    child_.write_stdin("quit\n");
    child_.close_stdin();
    if (child_.wait(5s) == -1) child_.signal(SIGKILL);
  }
  json run(json spec, std::chrono::seconds timeout = 180s) {
    const fs::path out = dir_ / ("result-" + std::to_string(++n_) + ".json");
    spec["out"] = out.string();
    if (!child_.write_stdin("run " + spec.dump() + "\n")) throw std::runtime_error("publisher gone: " + child_.log());
    if (!test::wait_until([&] { return fs::exists(out) || !child_.running() || g_stop; }, timeout, 2ms))
      throw std::runtime_error("publisher timed out");
    check_stop();
    if (!child_.running() && !fs::exists(out)) throw std::runtime_error("publisher died: " + child_.log());
    std::ifstream in(out);
    return json::parse(in);
  }
  std::string pid() { return std::to_string(child_.pid()); }

 private:
  static fs::path make_dir(const fs::path& d) {
    fs::create_directories(d);
    return d;
  }
  fs::path dir_;
  test::ChildProcess child_;
  int n_ = 0;
};

// ================================================================ ceiling subscriber

class CountingSubscriber {
 public:
  explicit CountingSubscriber(const std::string& uri) : client_(uri, "pw-bench-ceiling-sub") {
    client_.set_message_callback([this](mqtt::const_message_ptr m) {
      bytes_ += m->get_payload_ref().size();
      last_ns_ = steady_ns();
      messages_ += 1;
    });
    auto opts = mqtt::connect_options_builder().clean_session(true).keep_alive_interval(20s).finalize();
    client_.connect(opts)->wait();
    client_.subscribe(std::string(topics::events_filter), 1)->wait();
  }
  ~CountingSubscriber() {
    try {
      client_.disconnect(500)->wait_for(1s);
    } catch (const mqtt::exception&) {
    }
  }
  void reset() { messages_ = 0, bytes_ = 0, last_ns_ = 0; }
  std::uint64_t messages() const { return messages_; }
  std::uint64_t bytes() const { return bytes_; }
  std::int64_t last_ns() const { return last_ns_; }

 private:
  mqtt::async_client client_;
  std::atomic<std::uint64_t> messages_{0}, bytes_{0};
  std::atomic<std::int64_t> last_ns_{0};
};

// ================================================================ in-process aggregator

struct Stats {
  bool ok = false;
  std::uint64_t accepted = 0, persisted = 0, pending = 0, duplicate = 0, gaps = 0, rejected = 0;
  std::size_t body_bytes = 0, agents = 0;
  double request_ms = 0;
};

std::uint64_t json_number(const std::string& body, const std::string& key, bool& found) {
  auto at = body.find("\"" + key + "\":");
  if (at == std::string::npos) {
    found = false;
    return 0;
  }
  return std::strtoull(body.c_str() + at + key.size() + 3, nullptr, 10);
}

class InProcessAggregator {
 public:
  InProcessAggregator(const std::string& broker_uri, const fs::path& data_dir,
                      std::shared_ptr<const IndicatorCatalogue> catalogue, std::shared_ptr<spdlog::logger> log)
      : data_dir_(data_dir), work_(boost::asio::make_work_guard(io_)) {
    fs::create_directories(data_dir);
    aggregator::AggregatorOptions o;
    o.broker_uri = broker_uri;
    o.client_id = "pw-bench-aggregator";  // one persistent session, reused by every instance
    o.http_address = "127.0.0.1";
    o.http_port = 0;
    o.data_dir = data_dir;
    const auto before = thread_cpu();
    service_ = std::make_unique<aggregator::AggregatorService>(io_, o, std::move(catalogue), std::move(log));
    service_->start();
    port_ = service_->http_port();
    std::promise<std::string> tid;
    thread_ = std::thread([this, &tid] {
      pthread_setname_np(pthread_self(), "pw-aggr-io");
      tid.set_value(std::to_string(::gettid()));
      io_.run();
    });
    io_tid_ = tid.get_future().get();
    for (const auto& [t, v] : thread_cpu())
      if (!before.count(t) && t != io_tid_) other_tids_.push_back(t);
    std::cerr << "  aggregator io thread " << io_tid_ << ", threads new at start:";
    for (const auto& t : other_tids_) std::cerr << " " << t;
    std::cerr << "\n";
    if (!test::wait_until([&] { return test::http_get(port_, "/readyz").status == 200 || g_stop; }, 30s))
      throw std::runtime_error("the aggregator did not subscribe within 30 s");
    check_stop();
  }
  ~InProcessAggregator() {
    std::promise<void> stopped;
    boost::asio::post(io_, [&] {
      service_->stop();
      stopped.set_value();
    });
    stopped.get_future().wait_for(15s);
    work_.reset();
    io_.stop();
    thread_.join();
    service_.reset();
  }
  unsigned short port() const { return port_; }
  const std::string& io_tid() const { return io_tid_; }
  // Threads that appeared when the service started, other than the io thread: the
  // store's writer (Paho's threads too, unless another client already runs them).
  const std::vector<std::string>& other_tids() const { return other_tids_; }
  fs::path db() const { return data_dir_ / "postwatch.sqlite"; }

  Stats stats() const {
    Stats s;
    auto t0 = Clock::now();
    auto r = test::http_get(port_, "/api/v1/stats");
    s.request_ms = 1000 * seconds_since(t0);
    if (r.status != 200) return s;
    bool found = true;
    s.accepted = json_number(r.body, "events_accepted", found);
    s.persisted = json_number(r.body, "events_persisted", found);
    s.pending = json_number(r.body, "store_pending_events", found);
    s.duplicate = json_number(r.body, "events_duplicate", found);
    s.gaps = json_number(r.body, "events_gaps", found);
    s.rejected = json_number(r.body, "batches_rejected", found);
    s.body_bytes = r.body.size();
    s.agents = static_cast<std::size_t>(json_number(r.body, "agents_tracked", found));
    s.ok = found;
    return s;
  }

 private:
  fs::path data_dir_;
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::unique_ptr<aggregator::AggregatorService> service_;
  std::thread thread_;
  unsigned short port_ = 0;
  std::string io_tid_;
  std::vector<std::string> other_tids_;
};

// The aggregator's store, opened beside it (WAL lets it read beside the writer).
class StoreReader {
 public:
  StoreReader(const fs::path& file, const IndicatorCatalogue& catalogue)
      : store_({file}, catalogue, spdlog::null_logger_mt("store-reader-" + std::to_string(++instances_))) {}
  struct Rows {
    std::vector<std::int64_t> latency_ms;  // received_at - observed_at, sorted
    std::int64_t first_received_ms = 0, last_received_ms = 0;
  };
  // The events of agents "<tag>-*" received at or after since_ms.
  Rows rows(const std::string& tag, std::int64_t since_ms) {
    Rows r;
    const std::string prefix = tag + "-";
    r.first_received_ms = INT64_MAX;
    store_.scan_received_since(since_ms, [&](const aggregator::StoredEventRow& e) {
      if (!e.agent.starts_with(prefix)) return;
      r.latency_ms.push_back(e.received_at_ms - e.observed_at_ms);
      r.first_received_ms = std::min(r.first_received_ms, e.received_at_ms);
      r.last_received_ms = std::max(r.last_received_ms, e.received_at_ms);
    });
    std::sort(r.latency_ms.begin(), r.latency_ms.end());
    return r;
  }

 private:
  static inline int instances_ = 0;
  aggregator::EventStore store_;
};

// postwatch_ingest_latency_seconds from /metrics, when the aggregator serves it.
struct Histogram {
  bool present = false;
  std::vector<std::pair<double, double>> buckets;  // le (s), cumulative count
  double count = 0;
};

Histogram fetch_latency_histogram(unsigned short port) {
  Histogram h;
  auto r = test::http_get(port, "/metrics");
  if (r.status != 200) return h;
  std::istringstream in(r.body);
  const std::string prefix = "postwatch_ingest_latency_seconds_bucket{";
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(prefix, 0) == 0) {
      auto le = line.find("le=\"");
      auto close = line.find('"', le + 4);
      auto space = line.rfind(' ');
      if (le == std::string::npos || close == std::string::npos || space == std::string::npos) continue;
      std::string bound = line.substr(le + 4, close - le - 4);
      double b = bound == "+Inf" ? INFINITY : std::strtod(bound.c_str(), nullptr);
      h.buckets.emplace_back(b, std::strtod(line.c_str() + space + 1, nullptr));
      h.present = true;
    } else if (line.rfind("postwatch_ingest_latency_seconds_count", 0) == 0) {
      h.count = std::strtod(line.c_str() + line.rfind(' ') + 1, nullptr);
    }
  }
  return h;
}

// Upper bound (s) of the bucket holding the p-th percentile of (after - before).
double histogram_quantile_bound(const Histogram& before, const Histogram& after, double p) {
  if (!after.present || after.buckets.size() != before.buckets.size()) return NAN;
  const double total = after.buckets.back().second - before.buckets.back().second;
  if (total <= 0) return NAN;
  for (std::size_t i = 0; i < after.buckets.size(); ++i)
    if (after.buckets[i].second - before.buckets[i].second >= p / 100.0 * total) return after.buckets[i].first;
  return INFINITY;
}

// ================================================================ phases

struct Options {
  double seconds = 4;
  bool quick = false;
  std::set<std::string> phases{"ceiling", "e2e", "signed", "latency", "scaling"};
  std::size_t connections = 4, inflight = 8;
  std::string json_file;
};

constexpr std::size_t kAgents = 142;  // one agent per catalogue post, unless scaling says otherwise
const std::vector<std::size_t> kBatches{1, 10, 100, 500};
constexpr std::size_t kScalingBatch = 10;
const std::vector<std::size_t> kScalingAgents{10, 100, 1000, 10000};
constexpr std::size_t kMaxEventsPerRun = 3'000'000;

struct Context {
  Options opt;
  test::TempDir work;
  std::shared_ptr<const IndicatorCatalogue> catalogue;
  std::shared_ptr<spdlog::logger> log;
  Report report;
  std::unique_ptr<test::MosquittoBroker> broker;
  std::string broker_pid;
  std::unique_ptr<Publisher> pub;
  std::map<std::size_t, double> ceiling_events_per_s;  // by batch size
  std::map<std::size_t, double> e2e_events_per_s;
  std::map<std::size_t, double> e2e_duration_s;
  int runs = 0;
  std::string tag(const std::string& kind) { return kind + std::to_string(++runs); }
};

std::string b_key(std::size_t batch) { return "b" + std::to_string(batch); }

// Messages for about `seconds` at `events_per_s`, a whole number per agent.
std::size_t messages_for(double events_per_s, double seconds, std::size_t batch, std::size_t agents) {
  double events = std::clamp(events_per_s * seconds, 2000.0, static_cast<double>(kMaxEventsPerRun));
  auto per_agent = static_cast<std::size_t>(std::ceil(events / static_cast<double>(batch * agents)));
  return std::max<std::size_t>(per_agent, 1) * agents;
}

// 1. Broker ceiling: the same publisher, a subscriber that only counts.
void phase_ceiling(Context& c) {
  std::cerr << "ceiling: Paho publisher -> Mosquitto -> counting Paho subscriber (QoS 1)\n";
  CountingSubscriber sub(c.broker->uri());
  c.report.section("ceiling", "1. broker ceiling: " + std::to_string(c.opt.connections) +
                                  " publisher connections -> Mosquitto -> counting subscriber, QoS 1");
  struct Case {
    std::size_t batch, connections;
  };
  std::vector<Case> cases;
  for (std::size_t batch : kBatches) cases.push_back({batch, c.opt.connections});
  cases.push_back({1, 1});  // one connection, one event per message: the per-message cost alone
  for (const auto& [batch, conns] : cases) {
    const bool one = conns != c.opt.connections;
    // A short warm-up sizes the measured run.
    std::size_t warm = std::max<std::size_t>(2000 / batch, 200) / kAgents * kAgents + kAgents;
    sub.reset();
    auto w = c.pub->run(
        {{"batch", batch}, {"agents", kAgents}, {"messages", warm}, {"connections", conns}, {"tag", c.tag("w")}});
    test::wait_until([&] { return sub.messages() >= warm; }, 20s, 1ms);
    double warm_rate = static_cast<double>(warm * batch) /
                       (static_cast<double>(sub.last_ns() - w.at("start_ns").get<std::int64_t>()) / 1e9);
    const std::size_t m = messages_for(warm_rate, c.opt.seconds, batch, kAgents);
    sub.reset();
    const double broker0 = cpu_of(c.broker_pid), pub0 = cpu_of(c.pub->pid()), self0 = cpu_of("self");
    auto r = c.pub->run(
        {{"batch", batch}, {"agents", kAgents}, {"messages", m}, {"connections", conns}, {"tag", c.tag("c")}});
    bool done = test::wait_until([&] { return sub.messages() >= m || g_stop; }, 60s, 1ms);
    check_stop();
    const double secs = static_cast<double>(sub.last_ns() - r.at("start_ns").get<std::int64_t>()) / 1e9;
    const double msgs = static_cast<double>(sub.messages()) / secs;
    const double broker_cpu = cpu_of(c.broker_pid) - broker0,
                 pub_cpu = std::max(cpu_of(c.pub->pid()) - pub0 - r.value("encode_s", 0.0), 0.0),
                 sub_cpu = cpu_of("self") - self0;
    if (!one) c.ceiling_events_per_s[batch] = msgs * static_cast<double>(batch);
    std::cerr << "  batch " << batch << ", " << conns << " connection(s): " << sub.messages() << " messages in " << secs
              << " s" << (done ? "" : " (TIMED OUT)") << "\n";
    const auto k = b_key(batch) + (one ? "_c1" : "");
    const std::string l = "batch " + std::to_string(batch) + (one ? ", 1 connection" : "") + ": ";
    c.report.add(k + "_messages_per_s", l + "messages/s", msgs, "msg/s");
    c.report.add(k + "_events_per_s", l + "events/s", msgs * static_cast<double>(batch), "events/s");
    c.report.add(k + "_payload_bytes", l + "payload bytes per message",
                 static_cast<double>(sub.bytes()) / static_cast<double>(std::max<std::uint64_t>(sub.messages(), 1)),
                 "bytes");
    c.report.add(k + "_broker_cpu_percent", l + "mosquitto CPU", 100 * broker_cpu / secs, "% of one core");
    c.report.add(k + "_publisher_cpu_percent", l + "publisher process CPU", 100 * pub_cpu / secs, "% of one core");
    c.report.add(k + "_subscriber_cpu_percent", l + "subscriber (this process) CPU", 100 * sub_cpu / secs,
                 "% of one core");
    if (!done) c.report.text(k + "_completed", l + "completed", "NO (timed out)");
  }
}

struct AppliedRun {
  bool done = false;
  std::uint64_t events = 0;
  double seconds = 0;       // first publish -> last event applied (store's received_at)
  double poll_seconds = 0;  // the same, by polling /api/v1/stats
  double store_lag_s = 0;   // last applied -> everything committed to SQLite
  std::uint64_t max_pending = 0;
  double stats_ms_max = 0;
  std::size_t stats_bytes = 0;
  // CPU seconds: this process; the aggregator's io thread; its store writer (the thread that
  // appeared when the service started); Paho's library threads (started earlier by the
  // keeper client); this thread (polling, SQLite reads).
  double agg_cpu = 0, io_cpu = 0, writer_cpu = 0, paho_cpu = 0, main_cpu = 0, broker_cpu = 0, pub_cpu = 0;
  double cpu_window_s = 0;  // wall time the CPU figures above were taken over
  std::uint64_t duplicates = 0, gaps = 0, rejected = 0;
  StoreReader::Rows rows;
  json pub;
};

// Publishes one run through the aggregator and waits until all of it is applied and stored.
AppliedRun run_through_aggregator(Context& c, InProcessAggregator& agg, json spec, std::uint64_t expect_events) {
  AppliedRun out;
  const Stats s0 = agg.stats();
  if (!s0.ok) throw std::runtime_error("cannot read /api/v1/stats");
  const auto th0 = thread_cpu();
  const auto window0 = Clock::now();
  const double self0 = [] {
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  }();
  const double broker0 = cpu_of(c.broker_pid), pub0 = cpu_of(c.pub->pid());
  const std::string tag = spec.at("tag");
  const std::int64_t since_ms = now_utc_ms();
  // The publisher answers once every PUBACK is in; meanwhile nothing polls.
  std::promise<json> published;
  auto fut = published.get_future();
  std::thread runner([&] {
    try {
      published.set_value(c.pub->run(spec));
    } catch (...) {
      published.set_exception(std::current_exception());
    }
  });
  // Poll the counters, backing off so the poll never costs the io thread more than ~10%, but
  // never sleeping more than 100 ms: a request's time is mostly its wait behind the io thread's
  // queue, and a backoff of seconds kept the CPU window open long after the run (the signed
  // phase measured 15 s of CPU for a 5 s run, and showed every process idle).
  auto interval = 20ms;
  const auto deadline = Clock::now() + 120s;
  Stats s = s0;
  std::int64_t done_ns = 0;
  while (Clock::now() < deadline && !g_stop) {
    std::this_thread::sleep_for(interval);
    s = agg.stats();
    if (!s.ok) continue;
    out.max_pending = std::max(out.max_pending, s.pending);
    out.stats_ms_max = std::max(out.stats_ms_max, s.request_ms);
    out.stats_bytes = s.body_bytes;
    interval = std::clamp(std::chrono::milliseconds(static_cast<long>(10 * s.request_ms)),
                          std::chrono::milliseconds(20), std::chrono::milliseconds(100));
    if (s.accepted - s0.accepted >= expect_events) {
      done_ns = steady_ns();
      out.done = true;
      break;
    }
  }
  runner.join();
  out.pub = fut.get();
  check_stop();
  const auto th1 = thread_cpu();
  out.cpu_window_s = seconds_since(window0);
  const double self1 = [] {
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  }();
  // The publisher pre-encodes before its clock starts: leave that out of its CPU and the window.
  const double encode_s = out.pub.value("encode_s", 0.0);
  out.cpu_window_s = std::max(out.cpu_window_s - encode_s, 1e-3);
  out.broker_cpu = cpu_of(c.broker_pid) - broker0;
  out.pub_cpu = std::max(cpu_of(c.pub->pid()) - pub0 - encode_s, 0.0);
  out.agg_cpu = self1 - self0;
  auto delta = [&](const std::string& tid) {
    auto a = th1.find(tid), b = th0.find(tid);
    return (a == th1.end() ? 0 : a->second.second) - (b == th0.end() ? 0 : b->second.second);
  };
  out.io_cpu = delta(agg.io_tid());
  const std::string main_tid = std::to_string(::getpid());
  out.main_cpu = delta(main_tid);
  for (const auto& t : agg.other_tids()) out.writer_cpu += delta(t);
  for (const auto& [tid, v] : th0)
    if (th1.count(tid) && tid != main_tid && tid != agg.io_tid() &&
        std::find(agg.other_tids().begin(), agg.other_tids().end(), tid) == agg.other_tids().end())
      out.paho_cpu += delta(tid);
  // Everything applied is handed to the store; wait for the commit (the writer's lag).
  const auto applied_at = Clock::now();
  Stats f = s;
  test::wait_until(
      [&] {
        f = agg.stats();
        return (f.ok && f.persisted >= f.accepted) || g_stop;
      },
      60s, 20ms);
  out.store_lag_s = seconds_since(applied_at);
  out.duplicates = f.duplicate - s0.duplicate;
  out.gaps = f.gaps - s0.gaps;
  out.rejected = f.rejected - s0.rejected;
  out.events = f.accepted - s0.accepted;
  StoreReader reader(agg.db(), *c.catalogue);
  out.rows = reader.rows(tag, since_ms);
  const auto start_ms = out.pub.at("start_ms").get<std::int64_t>();
  const auto start_ns = out.pub.at("start_ns").get<std::int64_t>();
  out.poll_seconds = done_ns ? static_cast<double>(done_ns - start_ns) / 1e9 : NAN;
  out.seconds = out.rows.latency_ms.empty()
                    ? out.poll_seconds
                    : static_cast<double>(std::max<std::int64_t>(out.rows.last_received_ms - start_ms, 1)) / 1000;
  return out;
}

void report_cpu(Context& c, const std::string& k, const std::string& label, const AppliedRun& r) {
  // The spans the figures rest on: a CPU window much longer than the run means the processes
  // were measured while idle (before the first publish or after the last event applied).
  const double publish_s =
      static_cast<double>(r.pub.value("end_ns", std::int64_t{0}) - r.pub.value("start_ns", std::int64_t{0})) / 1e9;
  c.report.add(k + "_run_s", label + "first publish -> last event applied", r.seconds, "s", 3);
  c.report.add(k + "_publish_s", label + "first publish -> last PUBACK at the publisher", publish_s, "s", 3);
  c.report.add(k + "_cpu_window_s", label + "CPU measured over", r.cpu_window_s, "s", 3);
  c.report.add(k + "_encode_s", label + "publisher's encoding (and signing) before, left out",
               r.pub.value("encode_s", 0.0), "s", 3);
  c.report.add(k + "_aggregator_cpu_percent", label + "bench process CPU (aggregator + poller)",
               100 * r.agg_cpu / r.cpu_window_s, "% of one core");
  c.report.add(k + "_io_thread_cpu_percent", label + "  of which the aggregator's io_context thread",
               100 * r.io_cpu / r.cpu_window_s, "% of one core");
  c.report.add(k + "_store_writer_cpu_percent", label + "  of which the store's writer thread (SQLite)",
               100 * r.writer_cpu / r.cpu_window_s, "% of one core");
  c.report.add(k + "_paho_cpu_percent", label + "  of which Paho's library threads (MQTT in)",
               100 * r.paho_cpu / r.cpu_window_s, "% of one core");
  c.report.add(k + "_broker_cpu_percent", label + "mosquitto CPU", 100 * r.broker_cpu / r.cpu_window_s,
               "% of one core");
  c.report.add(k + "_publisher_cpu_percent", label + "publisher process CPU", 100 * r.pub_cpu / r.cpu_window_s,
               "% of one core");
}

// 2. End to end: the same publisher, the aggregator as the subscriber.
void phase_e2e(Context& c, InProcessAggregator& agg) {
  std::cerr << "e2e: publisher -> Mosquitto -> in-process AggregatorService\n";
  c.report.section("e2e", "2. Postwatch end to end: " + std::to_string(kAgents) +
                              " agents (one per post) -> Mosquitto -> AggregatorService, events applied");
  for (std::size_t batch : kBatches) {
    const double guess = c.ceiling_events_per_s.count(batch) ? c.ceiling_events_per_s[batch] : 20000.0 * batch;
    const std::size_t m = messages_for(guess, c.opt.seconds, batch, kAgents);
    auto r = run_through_aggregator(
        c, agg, {{"batch", batch}, {"agents", kAgents}, {"messages", m}, {"tag", c.tag("e")}}, m * batch);
    const double rate = static_cast<double>(r.events) / r.seconds;
    c.e2e_events_per_s[batch] = rate;
    c.e2e_duration_s[batch] = r.seconds;
    const auto k = b_key(batch);
    const std::string l = "batch " + std::to_string(batch) + ": ";
    std::cerr << "  batch " << batch << ": " << r.events << " events applied in " << r.seconds << " s"
              << (r.done ? "" : " (TIMED OUT)") << "\n";
    c.report.add(k + "_events_per_s", l + "events applied/s", rate, "events/s");
    c.report.add(k + "_messages_per_s", l + "messages/s", rate / static_cast<double>(batch), "msg/s");
    if (c.ceiling_events_per_s.count(batch))
      c.report.add(k + "_ratio_to_ceiling", l + "ratio to the broker ceiling", rate / c.ceiling_events_per_s[batch], "",
                   2);
    c.report.add(
        k + "_publish_seconds", l + "publisher done (last PUBACK) after",
        static_cast<double>(r.pub.at("end_ns").get<std::int64_t>() - r.pub.at("start_ns").get<std::int64_t>()) / 1e9,
        "s", 2);
    c.report.add(k + "_seconds", l + "last event applied after", r.seconds, "s", 2);
    c.report.add(k + "_store_lag_seconds", l + "SQLite commit lag after the last event", r.store_lag_s, "s", 2);
    c.report.add(k + "_committed_events_per_s", l + "events committed to SQLite/s (first publish -> last commit)",
                 static_cast<double>(r.events) / (r.seconds + r.store_lag_s), "events/s");
    c.report.add(k + "_store_pending_max", l + "store_pending_events, highest polled",
                 static_cast<double>(r.max_pending), "events");
    c.report.add(k + "_rows_in_store", l + "rows of the run in SQLite afterwards",
                 static_cast<double>(r.rows.latency_ms.size()), "");
    report_cpu(c, k, l, r);
    if (r.duplicates || r.gaps || r.rejected || r.events != m * batch)
      c.report.text(k + "_anomalies", l + "ANOMALIES",
                    "applied " + std::to_string(r.events) + " of " + std::to_string(m * batch) + ", duplicates " +
                        std::to_string(r.duplicates) + ", gaps " + std::to_string(r.gaps) + ", rejected batches " +
                        std::to_string(r.rejected));
  }
}

// Enrols `agents` agents of `tag` as `postwatch-agent enrol` does (docs/security.md): a token
// from the API (open on loopback here), a request with its proof, signed by the agent's key
// (bench_key, which the publisher signs with), and the aggregator's acceptance.
void enrol_bench_agents(Context& c, InProcessAggregator& agg, const std::string& tag, std::size_t agents) {
  mqtt::async_client client(c.broker->uri(), "pw-bench-enrol-" + tag);
  std::mutex mu;
  std::condition_variable cv;
  std::size_t accepted = 0, refused = 0;
  std::string last_refusal;
  client.set_message_callback([&](const mqtt::const_message_ptr& m) {
    const auto& p = m->get_payload();
    EnrolReply r;
    if (decode_enrol_reply({reinterpret_cast<const std::uint8_t*>(p.data()), p.size()}, r) != DecodeError::None) return;
    std::lock_guard lk(mu);
    (r.accepted ? accepted : refused) += 1;
    if (!r.accepted) last_refusal = r.reason;
    cv.notify_all();
  });
  client.connect(mqtt::connect_options_builder().clean_session(true).finalize())->wait();
  client.subscribe("postwatch/v1/+/+/+/enrolled", 1)->wait();
  for (std::size_t a = 0; a < agents; ++a) {
    const auto b = bench::bench_agent(*c.catalogue, tag, a);
    const auto issued = test::run_shell("curl -sf -X POST -H 'Content-Type: application/json' -d " +
                                        test::shell_quoted(json{{"post", b.post}, {"agent", b.id}}.dump()) +
                                        " http://127.0.0.1:" + std::to_string(agg.port()) + "/api/v1/enrolment-tokens");
    std::string why;
    auto token = parse_enrolment_token(json::parse(issued.output, nullptr, false).value("token", ""), why);
    if (!token) throw std::runtime_error("no enrolment token for " + b.id + ": " + issued.output);
    const auto key = bench::bench_key(b.id);
    const auto payload = enrolment_request(*token, b.post, b.id, key, now_utc_ms());
    client.publish(topics::agent_topic(c.catalogue->find_post(b.post)->region, b.post, b.id, topics::Channel::Enrol),
                   payload.data(), payload.size(), 1, false);
  }
  std::unique_lock lk(mu);
  if (!cv.wait_for(lk, 60s, [&] { return accepted + refused >= agents; }) || refused)
    throw std::runtime_error("enrolled " + std::to_string(accepted) + " of " + std::to_string(agents) +
                             " benchmark agents (" + std::to_string(refused) + " refused: " + last_refusal + ")");
  lk.unlock();
  client.disconnect()->wait();
}

// 2b. Signed batches (docs/security.md): enrolled agents against as many unenrolled ones, in
// turns on the same aggregator, three runs each: what verifying a signature per batch costs end
// to end. The median of each side and their ratio.
void phase_signed(Context& c, InProcessAggregator& agg) {
  std::cerr << "signed: enrolled agents (signed batches) vs unenrolled ones, in turns\n";
  c.report.section("signed", "2b. Signed vs unsigned batches end to end: " + std::to_string(kAgents) +
                                 " agents each, 3 runs per side in turns, medians");
  for (std::size_t batch : {std::size_t{10}, std::size_t{100}}) {
    const double guess = c.e2e_events_per_s.count(batch) ? c.e2e_events_per_s[batch] : 20000.0 * batch;
    const std::size_t m = messages_for(guess, c.opt.seconds, batch, kAgents);
    std::vector<double> rates[2];
    std::vector<AppliedRun> runs[2];
    std::string anomalies;
    for (int rep = 0; rep < 3 && !g_stop; ++rep)
      for (bool sign : {false, true}) {
        const std::string tag = c.tag(sign ? "s" : "u");
        if (sign) enrol_bench_agents(c, agg, tag, kAgents);
        auto r = run_through_aggregator(
            c, agg, {{"batch", batch}, {"agents", kAgents}, {"messages", m}, {"tag", tag}, {"signed", sign}},
            m * batch);
        rates[sign].push_back(static_cast<double>(r.events) / r.seconds);
        runs[sign].push_back(r);
        if (!r.done || r.rejected || r.events != m * batch)
          anomalies += std::string(sign ? " signed" : " unsigned") + " run " + std::to_string(rep + 1) + ": applied " +
                       std::to_string(r.events) + " of " + std::to_string(m * batch) + ";";
      }
    // Which run of a side is its median: its rate is the figure, its CPU the breakdown below.
    auto median_run = [](const std::vector<double>& v) {
      std::vector<std::size_t> order(v.size());
      for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
      std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return v[a] < v[b]; });
      return order[order.size() / 2];
    };
    auto median = [&](const std::vector<double>& v) { return v.empty() ? 0.0 : v[median_run(v)]; };
    const double plain = median(rates[0]), signed_rate = median(rates[1]);
    const auto k = b_key(batch);
    const std::string l = "batch " + std::to_string(batch) + ": ";
    std::cerr << "  batch " << batch << ": unsigned " << plain << " events/s, signed " << signed_rate << " events/s\n";
    c.report.add(k + "_unsigned_events_per_s", l + "unsigned, events applied/s", plain, "events/s");
    c.report.add(k + "_signed_events_per_s", l + "signed, events applied/s", signed_rate, "events/s");
    c.report.add(k + "_signed_ratio", l + "signed / unsigned", plain > 0 ? signed_rate / plain : 0, "", 3);
    // Where the time went in each side's median run: an io thread short of a whole core means
    // the limit is elsewhere (the broker, the publisher, the other core's share).
    for (bool sign : {false, true}) {
      if (runs[sign].empty()) continue;
      report_cpu(c, k + (sign ? "_signed" : "_unsigned"), l + (sign ? "signed, " : "unsigned, "),
                 runs[sign][median_run(rates[sign])]);
    }
    if (!anomalies.empty()) c.report.text(k + "_anomalies", l + "ANOMALIES", anomalies);
  }
}

// 3. Latency at a fixed rate: observed_at (= creation) -> applied (the store's received_at).
void phase_latency(Context& c, InProcessAggregator& agg) {
  std::cerr << "latency: fixed rates, creation -> applied\n";
  c.report.section("latency", "3. latency, event created (observed_at) -> applied (received_at), ms resolution");
  const double secs = c.opt.quick ? 2 : 5;
  struct Case {
    std::size_t batch;
    double rate;
    std::string key, label;
  };
  std::vector<Case> cases;
  for (std::size_t b : {1, 10, 100})
    cases.push_back({b, 2000, "r2000_" + b_key(b), "2000 events/s, batch " + std::to_string(b)});
  for (std::size_t b : {1, 10, 100}) {
    double sat = c.e2e_events_per_s.count(b) ? 0.8 * c.e2e_events_per_s[b] : 0;
    if (sat > 0) cases.push_back({b, sat, "sat_" + b_key(b), "80% of e2e max, batch " + std::to_string(b)});
  }
  for (const auto& k : cases) {
    const auto m = std::max<std::size_t>(
        static_cast<std::size_t>(k.rate * secs / static_cast<double>(k.batch)) / kAgents * kAgents, kAgents);
    const Histogram h0 = fetch_latency_histogram(agg.port());
    auto r = run_through_aggregator(
        c, agg, {{"batch", k.batch}, {"agents", kAgents}, {"messages", m}, {"rate", k.rate}, {"tag", c.tag("l")}},
        m * k.batch);
    const Histogram h1 = fetch_latency_histogram(agg.port());
    const auto& lat = r.rows.latency_ms;
    double mean = 0;
    for (auto v : lat) mean += static_cast<double>(v);
    mean /= static_cast<double>(std::max<std::size_t>(lat.size(), 1));
    std::cerr << "  " << k.label << " (" << std::lround(k.rate) << "/s): p50 " << percentile(lat, 50) << " p99 "
              << percentile(lat, 99) << " p99.9 " << percentile(lat, 99.9) << " max " << percentile(lat, 100)
              << " ms over " << lat.size() << " events\n";
    const std::string l = k.label + ": ";
    c.report.add(k.key + "_rate", l + "offered", k.rate, "events/s");
    c.report.add(k.key + "_p50_ms", l + "p50", percentile(lat, 50), "ms");
    c.report.add(k.key + "_p99_ms", l + "p99", percentile(lat, 99), "ms");
    c.report.add(k.key + "_p999_ms", l + "p99.9", percentile(lat, 99.9), "ms");
    c.report.add(k.key + "_max_ms", l + "max", percentile(lat, 100), "ms");
    c.report.add(k.key + "_mean_ms", l + "mean", mean, "ms", 2);
    c.report.add(k.key + "_events", l + "events measured", static_cast<double>(lat.size()), "");
    c.report.add(k.key + "_publisher_max_lag_ms", l + "publisher behind schedule, at worst",
                 r.pub.at("max_lag_ms").get<double>(), "ms", 1);
    if (h1.present) {
      c.report.add(k.key + "_metrics_p50_le_ms",
                   l + "/metrics histogram: p50 <=", 1000 * histogram_quantile_bound(h0, h1, 50), "ms");
      c.report.add(k.key + "_metrics_p99_le_ms",
                   l + "/metrics histogram: p99 <=", 1000 * histogram_quantile_bound(h0, h1, 99), "ms");
      c.report.add(k.key + "_metrics_p999_le_ms",
                   l + "/metrics histogram: p99.9 <=", 1000 * histogram_quantile_bound(h0, h1, 99.9), "ms");
    }
  }
  c.report.text("metrics_histogram", "/metrics postwatch_ingest_latency_seconds",
                fetch_latency_histogram(agg.port()).present ? "present (bucket bounds shown above)" : "not served");
}

// 4. Scaling: distinct agent ids over the 142 posts, few connections, fresh aggregator.
void phase_scaling(Context& c) {
  std::cerr << "scaling: 10 .. 10000 agents, batch " << kScalingBatch << "\n";
  ::malloc_trim(0);
  std::ofstream("/proc/self/clear_refs") << "5\n";  // resets VmHWM to the current VmRSS
  const double rss_before = static_cast<double>(status_kb("self", "VmRSS"));
  auto agg =
      std::make_unique<InProcessAggregator>(c.broker->uri(), c.work.path() / "aggregator-scaling", c.catalogue, c.log);
  ::malloc_trim(0);
  const double rss_empty = static_cast<double>(status_kb("self", "VmRSS"));
  c.report.section("scaling", "4. scaling: distinct agent ids over the posts, batch " + std::to_string(kScalingBatch) +
                                  ", " + std::to_string(c.opt.connections) + " connections, fresh aggregator");
  c.report.add("rss_before_kib", "bench process VmRSS before the aggregator", rss_before, "KiB");
  c.report.add("rss_empty_kib", "VmRSS with the aggregator started, no agents", rss_empty, "KiB");
  const double guess =
      c.ceiling_events_per_s.count(kScalingBatch) ? 0.8 * c.ceiling_events_per_s[kScalingBatch] : 100000;
  std::uint64_t seq_start = 1;
  double prev_rss = rss_empty;
  std::size_t prev_agents = 0;
  const std::string tag = c.tag("s");
  for (std::size_t agents : kScalingAgents) {
    const std::size_t m = messages_for(guess, c.opt.seconds, kScalingBatch, agents);
    auto r = run_through_aggregator(
        c, *agg,
        {{"batch", kScalingBatch}, {"agents", agents}, {"messages", m}, {"tag", tag}, {"seq_start", seq_start}},
        m * kScalingBatch);
    seq_start += (m / agents) * kScalingBatch;
    const double rate = static_cast<double>(r.events) / r.seconds;
    const double hwm = static_cast<double>(status_kb("self", "VmHWM"));
    ::malloc_trim(0);  // what stays is what the aggregator holds, not freed queues
    const double rss = static_cast<double>(status_kb("self", "VmRSS"));
    const Stats s = agg->stats();
    const auto k = "a" + std::to_string(agents);
    const std::string l = std::to_string(agents) + " agents: ";
    std::cerr << "  " << agents << " agents: " << r.events << " events in " << r.seconds << " s, VmRSS " << rss
              << " KiB\n";
    c.report.add(k + "_events_per_s", l + "events applied/s", rate, "events/s");
    c.report.add(k + "_messages_per_agent", l + "messages per agent", static_cast<double>(m / agents), "");
    c.report.add(k + "_agents_tracked", l + "agents in /api/v1/stats", static_cast<double>(s.agents), "");
    c.report.add(k + "_vm_rss_kib", l + "bench process VmRSS after the run (aggregator + harness)", rss, "KiB");
    c.report.add(k + "_vm_hwm_kib", l + "VmHWM (peak) since the scaling phase began", hwm, "KiB");
    if (agents >= 1000)
      c.report.add(k + "_rss_per_new_agent_bytes", l + "VmRSS growth per added agent",
                   1024 * (rss - prev_rss) / static_cast<double>(agents - prev_agents), "bytes");
    c.report.add(k + "_stats_ms", l + "GET /api/v1/stats (on the io thread)", s.request_ms, "ms", 1);
    c.report.add(k + "_stats_bytes", l + "/api/v1/stats body", static_cast<double>(s.body_bytes), "bytes");
    report_cpu(c, k, l, r);
    if (r.duplicates || r.gaps || r.rejected || r.events != m * kScalingBatch)
      c.report.text(k + "_anomalies", l + "ANOMALIES",
                    "applied " + std::to_string(r.events) + " of " + std::to_string(m * kScalingBatch) +
                        ", duplicates " + std::to_string(r.duplicates) + ", gaps " + std::to_string(r.gaps));
    prev_rss = rss;
    prev_agents = agents;
  }
  agg.reset();
}

// Two properties of the machine that several figures here hinge on: what a first touch of
// fresh memory costs (page faults; large on some VMs) and what a small fdatasync costs.
void phase_machine(Context& c) {
  const std::size_t bytes = 64u << 20;
  double us_per_page = 0;
  for (int round = 0; round < 2; ++round) {  // the second round, after the allocator warmed up
    auto* p = static_cast<char*>(::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (p == MAP_FAILED) return;
    auto t0 = Clock::now();
    for (std::size_t i = 0; i < bytes; i += 4096) p[i] = 1;
    us_per_page = 1e6 * seconds_since(t0) / static_cast<double>(bytes / 4096);
    ::munmap(p, bytes);
  }
  const auto file = c.work.path() / "fsync-probe";
  int fd = ::open(file.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0600);
  double fsync_ms = NAN;
  if (fd >= 0) {
    char block[4096] = {};
    constexpr int kSyncs = 50;
    auto t0 = Clock::now();
    for (int i = 0; i < kSyncs; ++i)
      if (::write(fd, block, sizeof block) != sizeof block || ::fdatasync(fd) != 0) break;
    fsync_ms = 1000 * seconds_since(t0) / kSyncs;
    ::close(fd);
  }
  c.report.section("machine", "0. machine");
  c.report.add("page_fault_us", "first touch of fresh memory", us_per_page, "us per 4 KiB page", 2);
  c.report.add("fdatasync_ms", "4 KiB write + fdatasync in the temp dir", fsync_ms, "ms", 2);
  c.report.add(
      "loadavg_1m", "load average (1 min) at start",
      [] {
        double l = NAN;
        std::ifstream("/proc/loadavg") >> l;
        return l;
      }(),
      "", 2);
}

int run(const Options& opt) {
  const auto started = Clock::now();
  Context c;
  c.opt = opt;
  c.catalogue = std::make_shared<const IndicatorCatalogue>(IndicatorCatalogue::load(POSTWATCH_BENCH_CATALOGUE));
  c.log = std::make_shared<spdlog::logger>("aggregator", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  c.log->set_level(spdlog::level::warn);
  c.report.config("seconds_per_run", opt.seconds);
  c.report.config("connections", opt.connections);
  c.report.config("inflight_per_connection", opt.inflight);
  c.report.config("agents", kAgents);
  c.report.config("cpus", std::thread::hardware_concurrency());
  c.report.config("started_at_ms", now_utc_ms());

  phase_machine(c);
  std::cerr << "starting mosquitto and the publisher process...\n";
  c.broker = std::make_unique<test::MosquittoBroker>("", /*persistent=*/false);
  c.broker_pid = find_child("mosquitto");
  c.pub = std::make_unique<Publisher>(c.broker->uri(), c.work.path() / "publisher", opt.connections, opt.inflight);
  // A connected client that does nothing keeps Paho's library threads running from here
  // on, so each aggregator's new threads are its own (CPU by thread, below).
  mqtt::async_client keeper(c.broker->uri(), "pw-bench-keeper");
  keeper.connect(mqtt::connect_options_builder().clean_session(true).finalize())->wait();

  if (opt.phases.count("ceiling")) phase_ceiling(c);
  // Scaling first: its memory figures then start from a process that has not yet held
  // an aggregator (the e2e runs leave heap behind that no trim gives back).
  if (opt.phases.count("scaling")) phase_scaling(c);
  if (opt.phases.count("e2e") || opt.phases.count("signed") || opt.phases.count("latency")) {
    std::cerr << "starting the in-process aggregator...\n";
    InProcessAggregator agg(c.broker->uri(), c.work.path() / "aggregator", c.catalogue, c.log);
    if (opt.phases.count("e2e")) phase_e2e(c, agg);
    if (opt.phases.count("signed")) phase_signed(c, agg);
    if (opt.phases.count("latency")) phase_latency(c, agg);
  }
  try {
    keeper.disconnect(500)->wait_for(1s);
  } catch (const mqtt::exception&) {
  }
  c.pub.reset();
  c.broker.reset();

  c.report.section("run", "run");
  c.report.add("wall_seconds", "wall time of this benchmark", seconds_since(started), "s", 1);
  std::cout << "postwatch-bench-e2e: " << std::thread::hardware_concurrency() << " CPUs, " << opt.connections
            << " publisher connections x " << opt.inflight << " in flight, ~" << opt.seconds << " s per run\n";
  c.report.print(std::cout);
  if (!opt.json_file.empty()) {
    std::ofstream out(opt.json_file);
    out << c.report.json().dump(2) << "\n";
    if (!out) {
      std::cerr << "postwatch-bench-e2e: cannot write " << opt.json_file << "\n";
      return 1;
    }
  }
  return 0;
}

// ================================================================ collectd comparison

// One line to a collectd unixsock and its one-line answer.
class UnixSock {
 public:
  explicit UnixSock(const fs::path& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      throw std::runtime_error("cannot connect to " + path.string() + ": " + std::strerror(errno));
  }
  ~UnixSock() {
    if (fd_ >= 0) ::close(fd_);
  }
  std::string command(const std::string& line) {
    std::string out = line + "\n";
    if (::write(fd_, out.data(), out.size()) != static_cast<ssize_t>(out.size())) return "write failed";
    std::string reply;
    char ch;
    while (::read(fd_, &ch, 1) == 1 && ch != '\n') reply += ch;
    return reply;
  }

 private:
  int fd_ = -1;
};

struct ProcessFigures {
  double idle_rss = 0, idle_cpu = 0, busy_rss = 0, busy_hwm = 0, busy_cpu = 0;
  std::uint64_t messages = 0, delivered_events = 0;
  bool ok = false;
  std::string error;
};

class TopicCounter {
 public:
  TopicCounter(const std::string& uri, const std::string& filter) : client_(uri, "pw-bench-counter") {
    client_.set_message_callback([this](mqtt::const_message_ptr m) {
      messages_ += 1;
      if (m->get_topic().ends_with("/events")) {
        BatchView v;
        auto p = m->get_payload_ref();
        if (decode_batch({reinterpret_cast<const std::uint8_t*>(p.data()), p.size()}, v) == DecodeError::None)
          events_ += v.events.size();
      } else {
        events_ += 1;
      }
    });
    client_.connect(mqtt::connect_options_builder().clean_session(true).finalize())->wait();
    client_.subscribe(filter, 1)->wait();
  }
  ~TopicCounter() {
    try {
      client_.disconnect(500)->wait_for(1s);
    } catch (const mqtt::exception&) {
    }
  }
  void reset() { messages_ = 0, events_ = 0; }
  std::uint64_t messages() const { return messages_; }
  std::uint64_t events() const { return events_; }

 private:
  mqtt::async_client client_;
  std::atomic<std::uint64_t> messages_{0}, events_{0};
};

constexpr auto kIdle = 3s;
constexpr auto kFeed = 5s;

// Idle for 3 s, then `feed(i)` at `rate` per second for 5 s: RSS and CPU of `pid`.
ProcessFigures measure_process(const std::string& pid, int rate, TopicCounter& counter,
                               const std::function<bool(std::uint64_t)>& feed, const std::function<bool()>& alive) {
  ProcessFigures f;
  sleep_checked(300ms);
  double cpu0 = cpu_of(pid);
  auto t0 = Clock::now();
  sleep_checked(std::chrono::duration_cast<std::chrono::milliseconds>(kIdle));
  f.idle_cpu = 100 * (cpu_of(pid) - cpu0) / seconds_since(t0);
  f.idle_rss = static_cast<double>(status_kb(pid, "VmRSS"));
  if (!alive()) {
    f.error = "exited early";
    return f;
  }
  counter.reset();
  cpu0 = cpu_of(pid);
  t0 = Clock::now();
  const auto n = static_cast<std::uint64_t>(rate) * static_cast<std::uint64_t>(kFeed.count());
  for (std::uint64_t i = 0; i < n; ++i) {
    check_stop();
    std::this_thread::sleep_until(t0 + std::chrono::microseconds(1'000'000 / rate) * i);
    if (!feed(i)) {
      f.error = "feeding failed at event " + std::to_string(i);
      return f;
    }
  }
  std::this_thread::sleep_until(t0 + kFeed);
  f.busy_cpu = 100 * (cpu_of(pid) - cpu0) / seconds_since(t0);
  f.busy_rss = static_cast<double>(status_kb(pid, "VmRSS"));
  f.busy_hwm = static_cast<double>(status_kb(pid, "VmHWM"));
  test::wait_until([&] { return counter.events() >= n; }, 5s);
  f.messages = counter.messages();
  f.delivered_events = counter.events();
  f.ok = true;
  return f;
}

int collectd_main(int argc, char** argv) {
  int rate = 100;
  std::string json_file;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--rate" && i + 1 < argc)
      rate = std::max(1, std::atoi(argv[++i]));
    else if (a == "--json" && i + 1 < argc)
      json_file = argv[++i];
    else
      throw std::invalid_argument("collectd: unknown argument '" + a + "'");
  }
  Report report;
  report.config("rate", rate);
  test::TempDir work;
  test::MosquittoBroker broker("", false);
  auto cat = IndicatorCatalogue::load(POSTWATCH_BENCH_CATALOGUE);
  auto put = [&](const ProcessFigures& f, const std::string& key, const std::string& title) {
    report.section(key, title);
    if (!f.ok) {
      report.text("error", "skipped", f.error);
      return;
    }
    report.add("idle_vm_rss_kib", "VmRSS idle (connected)", f.idle_rss, "KiB");
    report.add("idle_cpu_percent", "CPU idle", f.idle_cpu, "% of one core", 2);
    report.add("busy_vm_rss_kib", "VmRSS after 5 s at " + std::to_string(rate) + " events/s", f.busy_rss, "KiB");
    report.add("busy_vm_hwm_kib", "VmHWM (peak)", f.busy_hwm, "KiB");
    report.add("busy_cpu_percent", "CPU at " + std::to_string(rate) + " events/s", f.busy_cpu, "% of one core", 2);
    report.add("messages_per_s", "MQTT messages/s", static_cast<double>(f.messages) / 5.0, "msg/s", 1);
    report.add("delivered", "events delivered (of " + std::to_string(rate * 5) + ")",
               static_cast<double>(f.delivered_events), "");
  };

  // collectd: unixsock PUTVAL in, mqtt plugin out (QoS 1), one value list per message.
  ProcessFigures cd;
  const std::string collectd = "/usr/sbin/collectd";
  if (!fs::exists(collectd)) {
    cd.error = "collectd not installed (apt-get install collectd-core)";
  } else {
    const auto dir = work.path() / "collectd";
    fs::create_directories(dir);
    std::ofstream(dir / "collectd.conf") << "Hostname \"bench\"\nFQDNLookup false\nInterval 10\n"
                                         << "BaseDir \"" << dir.string() << "\"\nPIDFile \"" << (dir / "pid").string()
                                         << "\"\nPluginDir \"/usr/lib/collectd\"\n"
                                         << "TypesDB \"/usr/share/collectd/types.db\"\n"
                                         << "LoadPlugin logfile\n<Plugin logfile>\n  LogLevel warning\n  File STDERR\n"
                                         << "</Plugin>\nLoadPlugin unixsock\n<Plugin unixsock>\n  SocketFile \""
                                         << (dir / "sock").string() << "\"\n</Plugin>\nLoadPlugin mqtt\n"
                                         << "<Plugin mqtt>\n  <Publish \"bench\">\n    Host \"127.0.0.1\"\n    Port "
                                         << broker.port()
                                         << "\n    ClientId \"collectd-bench\"\n    QoS 1\n    Prefix \"collectd\"\n"
                                         << "    Retain false\n  </Publish>\n</Plugin>\n";
    TopicCounter counter(broker.uri(), "collectd/#");
    test::ChildProcess proc({collectd, "-f", "-C", (dir / "collectd.conf").string()}, dir / "collectd.log");
    if (!test::wait_until([&] { return fs::exists(dir / "sock") || !proc.running(); }, 10s) || !proc.running()) {
      cd.error = "collectd did not start: " + proc.log();
    } else {
      UnixSock sock(dir / "sock");
      const auto& inds = cat.indicators();
      cd = measure_process(
          std::to_string(proc.pid()), rate, counter,
          [&](std::uint64_t i) {
            const auto& ind = inds[i % (inds.size() - 1)];  // numeric ones (the text one is last)
            auto reply = sock.command("PUTVAL bench/postwatch/gauge-" + ind.id + " N:" + std::to_string(i % 5));
            return reply.rfind("0 ", 0) == 0;
          },
          [&] { return proc.running(); });
      if (!cd.ok) cd.error += "; log: " + proc.log();
    }
    proc.signal(SIGTERM);
    if (proc.wait(5s) == -1) proc.signal(SIGKILL);
  }
  put(cd, "collectd", "collectd " + std::string("(mqtt plugin, QoS 1, values via unixsock PUTVAL)"));

  // postwatch-agent run, the same rate as JSON lines on stdin.
  ProcessFigures pa;
  const std::string bin = POSTWATCH_BENCH_AGENT_BINARY;
  if (!fs::exists(bin)) {
    pa.error = bin + " not found";
  } else {
    const auto cfg = work.path() / "agent.json";
    std::ofstream(cfg) << json{{"broker_uri", broker.uri()},
                               {"allow_plaintext", true},
                               {"agent_id", "bench-agent"},
                               {"post_id", "bamako"},
                               {"catalogue_file", POSTWATCH_BENCH_CATALOGUE},
                               // collectd has no aggregator either: release on PUBACK as it does
                               {"delivery", {{"confirm", "broker"}}},
                               {"spool", {{"dir", (work.path() / "spool").string()}}}}
                              .dump(2);
    TopicCounter counter(broker.uri(), std::string(topics::events_filter));
    test::ChildProcess child({bin, "run", "--config", cfg.string()}, work.path() / "agent.log", true);
    pa = measure_process(
        std::to_string(child.pid()), rate, counter,
        [&](std::uint64_t i) {
          return child.write_stdin(json{{"indicator", "terrorism_threat_level"}, {"value", 1 + i % 5}}.dump() + "\n");
        },
        [&] { return child.running(); });
    if (!pa.ok) pa.error += "; log: " + child.log();
    child.close_stdin();
    child.signal(SIGTERM);
    if (child.wait(10s) == -1) child.signal(SIGKILL);
  }
  put(pa, "postwatch_agent", "postwatch-agent run (default batching, spool fsync interval), same feed");

  std::cout << "postwatch-bench-e2e collectd: " << rate << " events/s for " << kFeed.count() << " s, broker "
            << broker.uri() << "\n";
  report.print(std::cout);
  if (!json_file.empty()) std::ofstream(json_file) << report.json().dump(2) << "\n";
  return 0;
}

Options parse_options(int argc, char** argv, int& exit_code, bool& exit_now) {
  Options o;
  bool seconds_given = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      std::cout << kUsage;
      exit_code = 0;
      exit_now = true;
      return o;
    } else if (a == "--quick") {
      o.quick = true;
    } else if (a == "--seconds") {
      o.seconds = std::stod(value());
      seconds_given = true;
      if (!(o.seconds > 0 && o.seconds <= 60)) throw std::invalid_argument("--seconds must be in (0, 60]");
    } else if (a == "--phases") {
      o.phases.clear();
      std::stringstream ss(value());
      for (std::string p; std::getline(ss, p, ',');) {
        if (p != "ceiling" && p != "e2e" && p != "signed" && p != "latency" && p != "scaling")
          throw std::invalid_argument("unknown phase '" + p + "'");
        o.phases.insert(p);
      }
    } else if (a == "--connections") {
      o.connections = std::clamp<std::size_t>(std::stoul(value()), 1, 64);
    } else if (a == "--inflight") {
      o.inflight = std::clamp<std::size_t>(std::stoul(value()), 1, 1000);
    } else if (a == "--json") {
      o.json_file = value();
    } else {
      throw std::invalid_argument("unknown argument '" + a + "'");
    }
  }
  if (o.quick && !seconds_given) o.seconds = 1.5;
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::signal(SIGPIPE, SIG_IGN);
  try {
    if (argc > 1 && std::string(argv[1]) == "publisher") return publisher_main(argc, argv);
    if (argc > 1 && std::string(argv[1]) == "collectd") return collectd_main(argc, argv);
    int code = 2;
    bool exit_now = false;
    auto opt = parse_options(argc, argv, code, exit_now);
    if (exit_now) return code;
    return run(opt);
  } catch (const std::invalid_argument& e) {
    std::cerr << "postwatch-bench-e2e: " << e.what() << "\n" << kUsage;
    return 2;
  } catch (const Interrupted&) {
    std::cerr << "postwatch-bench-e2e: interrupted; stopped every process it started\n";
    return 130;
  } catch (const std::exception& e) {
    std::cerr << "postwatch-bench-e2e: " << e.what() << "\n";
    return 1;
  }
}
