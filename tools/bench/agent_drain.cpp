// postwatch-bench-agent: how fast the agent fills and drains its disk spool, what
// it costs in memory and CPU (plaintext and encrypted spool side by side), and how
// that compares with a bare Paho publisher pushing the same payloads through the
// same broker. Prints figures (a table on stdout, optionally JSON); it never
// asserts timing. See tools/bench/README.md.
#include "postwatch/agent/agent.hpp"
#include "postwatch/agent/spool_store.hpp"
#include "postwatch/catalogue.hpp"
#include "postwatch/clock.hpp"
#include "postwatch/topics.hpp"
#include "postwatch/wire_codec.hpp"
#include "proc_stats.hpp"
#include "support/test_support.hpp"

#include <mqtt/async_client.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

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
using ojson = nlohmann::ordered_json;
namespace fs = std::filesystem;

constexpr const char* kPost = "bamako";
constexpr const char* kAgentId = "bench";
constexpr const char* kChildAgentId = "bench-child";
constexpr const char* kIndicator = "terrorism_threat_level";
constexpr std::int64_t kObservedBase = 1700000000000;
constexpr auto kDrainTimeout = 120s;
constexpr auto kBaselineTimeout = 60s;
constexpr int kBaselineRounds = 3;
constexpr auto kIdleWindow = 3s;
constexpr auto kFeedWindow = 5s;
constexpr int kFeedRate = 100;  // events per second into the child agent

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop = true; }

struct Interrupted : std::runtime_error {
  Interrupted() : std::runtime_error("interrupted") {}
};
void check_stop() {
  if (g_stop) throw Interrupted();
}

constexpr const char* kUsage =
    R"(postwatch-bench-agent — spool fill (plaintext and encrypted), drain, agent RSS/CPU and a plain-Paho baseline

usage: postwatch-bench-agent [--events N] [--batch N] [--inflight N] [--json FILE] [--quick]
  --events N    events to spool and drain (default 1000000)
  --batch N     the agent's batch max_events and the baseline's batch size (default 500)
  --inflight N  in-flight batches, agent and baseline (default: AgentConfig's, 8)
  --json FILE   also write the figures as one JSON object to FILE
  --quick       100000 events, for smoke runs
Starts its own Mosquitto and postwatch-agent on 127.0.0.1 and stops them again.
)";

struct Options {
  std::uint64_t events = 1'000'000;
  std::size_t batch = 500;
  std::size_t inflight = agent::AgentConfig{}.max_inflight_batches;
  std::string json_file;
};

std::uint64_t parse_count(const std::string& opt, const char* value, std::uint64_t lo, std::uint64_t hi) {
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(value, &end, 10);
  if (errno != 0 || end == value || *end != '\0' || v < lo || v > hi)
    throw std::invalid_argument(opt + " must be a whole number between " + std::to_string(lo) + " and " +
                                std::to_string(hi));
  return v;
}

// The options, or the exit code when the program should end right away.
std::optional<Options> parse_options(int argc, char** argv, int& exit_code) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      std::cout << kUsage;
      exit_code = 0;
      return std::nullopt;
    } else if (a == "--events") {
      o.events = parse_count(a, value(), 1, 100'000'000);
    } else if (a == "--batch") {
      o.batch = parse_count(a, value(), 1, WireLimits::max_events_per_batch);
    } else if (a == "--inflight") {
      o.inflight = parse_count(a, value(), 1, 1000);
    } else if (a == "--json") {
      o.json_file = value();
    } else if (a == "--quick") {
      o.events = 100'000;
    } else {
      throw std::invalid_argument("unknown argument '" + a + "'");
    }
  }
  return o;
}

// The benchmark's events: what a post's level source sends, no note, no tags.
IndicatorEvent make_event(std::uint64_t i) {
  return IndicatorEvent{0,
                        kObservedBase + static_cast<std::int64_t>(i),
                        kIndicator,
                        ValueKind::Level,
                        static_cast<double>(1 + i % 5),
                        "",
                        "",
                        {}};
}

std::string event_line(std::uint64_t i) {
  return nlohmann::json{{"indicator", kIndicator}, {"value", 1 + i % 5}}.dump() + "\n";
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// ---------------------------------------------------------------- /proc readers

double self_cpu_s() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto sec = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return sec(ru.ru_utime) + sec(ru.ru_stime);
}

double broker_cpu_s(const std::string& pid) { return pid.empty() ? 0 : proc_stat(pid).cpu_s; }

// CPU seconds per thread of this process, keyed by tid ("name/tid").
std::map<std::string, double> thread_cpu() {
  std::map<std::string, double> out;
  for (const auto& entry : fs::directory_iterator("/proc/self/task")) {
    const std::string tid = entry.path().filename().string();
    auto st = proc_stat("self/task/" + tid);
    if (st.ok) out[st.comm + "/" + tid] = st.cpu_s;
  }
  return out;
}

// "name 0.41 s, name 0.20 s, ..." for threads that used at least 10 ms since `before`.
std::string thread_cpu_delta(const std::map<std::string, double>& before) {
  std::vector<std::pair<double, std::string>> d;
  for (const auto& [k, v] : thread_cpu()) {
    auto it = before.find(k);
    double used = v - (it == before.end() ? 0 : it->second);
    if (used >= 0.01) d.emplace_back(used, k);
  }
  std::sort(d.rbegin(), d.rend());
  std::string s;
  char buf[32];
  for (const auto& [used, k] : d) {
    std::snprintf(buf, sizeof buf, " %.2f s", used);
    s += (s.empty() ? "" : ", ") + k + buf;
  }
  return s.empty() ? "(none)" : s;
}

std::uint64_t dir_bytes(const fs::path& dir, const std::string& ext) {
  std::uint64_t n = 0;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file() && e.path().extension() == ext) n += e.file_size();
  return n;
}

std::size_t dir_count(const fs::path& dir, const std::string& ext) {
  std::size_t n = 0;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file() && e.path().extension() == ext) ++n;
  return n;
}

// ---------------------------------------------------------------- results

class Report {
 public:
  void section(const std::string& key, const std::string& title) {
    key_ = key;
    rows_.push_back({title, "", ""});
  }
  void add(const std::string& key, const std::string& label, double v, const std::string& unit, int precision = 0) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", precision, v);
    rows_.push_back({"  " + label, group(buf), unit});
    j_[key_][key] = v;
  }
  void add_text(const std::string& key, const std::string& label, const std::string& v) {
    rows_.push_back({"  " + label, v, ""});
    j_[key_][key] = v;
  }
  // Figures side by side, one per column (the columns' names in a row added with `columns`).
  void add_columns(const std::string& key, const std::string& label, const std::vector<std::string>& cols,
                   const std::vector<double>& v, const std::string& unit, int precision = 0) {
    std::string text;
    for (std::size_t i = 0; i < v.size(); ++i) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.*f", precision, v[i]);
      text += pad(group(buf));
      j_[key_][cols[i] + "_" + key] = v[i];
    }
    rows_.push_back({"  " + label, text, unit, true});
  }
  void columns(const std::vector<std::string>& names) {
    std::string text;
    for (const auto& n : names) text += pad(n);
    rows_.push_back({"", text, "", true});
  }
  void config(const std::string& key, const ojson& v) { j_["config"][key] = v; }
  void print(std::ostream& out) const {
    std::size_t w0 = 0, w1 = 0;
    for (const auto& r : rows_) {
      if (r.value.empty() && r.unit.empty()) continue;  // a section title
      w0 = std::max(w0, r.label.size());
      if (!r.columns) w1 = std::max(w1, r.value.size());
    }
    for (const auto& r : rows_) {
      if (r.value.empty() && r.unit.empty()) {
        out << r.label << "\n";
        continue;
      }
      out << r.label << std::string(w0 - r.label.size() + 2, ' ')
          << std::string(r.columns ? 0 : w1 - r.value.size(), ' ') << r.value << "  " << r.unit << "\n";
    }
  }
  const ojson& json() const { return j_; }

 private:
  static std::string pad(const std::string& s) { return std::string(s.size() < 18 ? 18 - s.size() : 1, ' ') + s; }
  // 1234567.8 -> 1,234,567.8
  // (Built front to back: GCC 12 warns, wrongly, about string::insert inlined here: -Wrestrict.)
  static std::string group(const std::string& s) {
    auto dot = s.find('.');
    std::size_t end = dot == std::string::npos ? s.size() : dot;
    std::size_t begin = (!s.empty() && s[0] == '-') ? 1 : 0;
    std::string out = s.substr(0, begin);
    for (std::size_t i = begin; i < end; ++i) {
      out += s[i];
      if (i + 1 < end && (end - i - 1) % 3 == 0) out += ',';
    }
    return out + s.substr(end);
  }
  struct Row {
    std::string label, value, unit;
    bool columns = false;  // figures side by side (add_columns): not aligned with the single ones
  };
  std::vector<Row> rows_;
  ojson j_ = ojson::object();
  std::string key_;
};

// ---------------------------------------------------------------- subscriber

// A plain Paho subscriber on the events topics: counts batches, events (each seq
// once) and payload bytes.
class Subscriber {
 public:
  struct Counts {
    std::uint64_t messages = 0, events = 0, unique = 0, duplicates = 0, payload_bytes = 0, undecodable = 0;
  };

  explicit Subscriber(const std::string& uri) : client_(uri, "pw-bench-subscriber") {
    client_.set_message_callback([this](mqtt::const_message_ptr m) { on_message(*m); });
    auto opts = mqtt::connect_options_builder().clean_session(true).keep_alive_interval(20s).finalize();
    client_.connect(opts)->wait();
    client_.subscribe(std::string(topics::events_filter), 1)->wait();
  }
  ~Subscriber() {
    try {
      if (client_.is_connected()) client_.disconnect(500)->wait_for(1s);
    } catch (const mqtt::exception&) {
    }
  }

  // Starts counting afresh; seqs 1..expected are tracked for duplicates.
  void reset(std::uint64_t expected) {
    std::lock_guard lk(mu_);
    counts_ = {};
    seen_.assign(expected + 1, false);
  }
  Counts counts() const {
    std::lock_guard lk(mu_);
    return counts_;
  }

 private:
  void on_message(const mqtt::message& m) {
    const auto& p = m.get_payload();
    auto err = decode_batch(std::span(reinterpret_cast<const std::uint8_t*>(p.data()), p.size()), view_);
    std::lock_guard lk(mu_);
    counts_.messages += 1;
    counts_.payload_bytes += p.size();
    if (err != DecodeError::None) {
      counts_.undecodable += 1;
      return;
    }
    counts_.events += view_.events.size();
    for (const auto& e : view_.events) {
      if (e.seq < seen_.size() && !seen_[e.seq]) {
        seen_[e.seq] = true;
        counts_.unique += 1;
      } else {
        counts_.duplicates += 1;
      }
    }
  }

  mqtt::async_client client_;
  BatchView view_;  // only touched on Paho's callback thread
  mutable std::mutex mu_;
  Counts counts_;
  std::vector<bool> seen_;
};

// Polls until `done`, printing progress about once a second; false on timeout.
bool wait_progress(const char* what, const std::function<bool()>& done, const std::function<std::string()>& progress,
                   std::chrono::seconds timeout) {
  const auto t0 = Clock::now();
  auto next = t0 + 1s;
  while (!done()) {
    check_stop();
    if (Clock::now() - t0 > timeout) return false;
    if (Clock::now() >= next) {
      std::cerr << "  " << what << "... " << progress() << " after " << static_cast<int>(seconds_since(t0)) << " s\n";
      next += 1s;
    }
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

// ---------------------------------------------------------------- phases

struct Context {
  Options opt;
  test::TempDir work;
  std::shared_ptr<const IndicatorCatalogue> catalogue;
  std::shared_ptr<spdlog::logger> log;
  Report report;
  std::string events_topic;
};

agent::SpoolOptions spool_options(const Context& c) {
  agent::SpoolOptions so{.dir = c.work.path() / "spool"};
  so.fsync = agent::FsyncPolicy::Interval;  // the default; named because it matters here
  // Room for every event (the default 256 MiB holds ~4M of these); nothing may be refused.
  so.max_bytes = std::max<std::uint64_t>(so.max_bytes, c.opt.events * 256);
  return so;
}

// 1. Append N events into a fresh spool, no broker; maintain() once a second as the agent does.
void phase_fill(Context& c) {
  auto so = spool_options(c);
  std::cerr << "filling spool... " << std::flush;
  const auto t0 = Clock::now();
  std::uint64_t disk_bytes = 0;
  {
    agent::SpoolStore spool(so, c.log);
    auto next_maintain = t0 + 1s;
    for (std::uint64_t i = 0; i < c.opt.events; ++i) {
      spool.append(make_event(i));
      if ((i & 4095) == 0 && Clock::now() >= next_maintain) {
        check_stop();
        spool.maintain(now_utc_ms());
        next_maintain += 1s;
      }
    }
    const double fill_s = seconds_since(t0);
    disk_bytes = dir_bytes(so.dir, ".seg");
    std::cerr << c.opt.events << " events in " << fill_s << " s\n";
    c.report.section("fill", "fill: append to a fresh SpoolStore (fsync interval, no broker)");
    c.report.add("events_per_s", "events appended/s", static_cast<double>(c.opt.events) / fill_s, "events/s");
    c.report.add("seconds", "time to append N", fill_s, "s", 2);
    c.report.add("spool_bytes", "spool bytes on disk", static_cast<double>(disk_bytes), "bytes");
    c.report.add("bytes_per_event", "bytes per event on disk", static_cast<double>(disk_bytes) / c.opt.events, "bytes",
                 1);
    c.report.add("segments", "segment files", static_cast<double>(dir_count(so.dir, ".seg")), "");
  }
}

double thread_cpu_s() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// 1b. The same fill with the spool encrypted (ChaCha20-Poly1305, the default, and AES-256-GCM)
// beside plaintext, in this run, rounds interleaved so that load on the machine hits all alike;
// then the recovery scan and read-back of each. Medians of kCryptoRounds.
constexpr int kCryptoRounds = 3;
void phase_fill_encrypted(Context& c) {
  struct Variant {
    const char* name;  // the JSON keys' suffix
    const char* title;
    bool sealed;
    agent::SpoolAead aead;
  };
  const std::vector<Variant> variants = {
      {"plaintext", "plaintext", false, agent::SpoolAead::ChaCha20Poly1305},
      {"chacha20_poly1305", "chacha20-poly1305", true, agent::SpoolAead::ChaCha20Poly1305},
      {"aes_256_gcm", "aes-256-gcm", true, agent::SpoolAead::Aes256Gcm}};
  struct Sample {
    double fill_s = 0, fill_cpu_s = 0, reopen_s = 0, read_s = 0, bytes = 0;
  };
  std::vector<std::vector<Sample>> samples(variants.size());
  std::cerr << "filling plaintext and encrypted spools, " << kCryptoRounds << " rounds... " << std::flush;
  for (int round = 0; round < kCryptoRounds; ++round) {
    for (std::size_t v = 0; v < variants.size(); ++v) {
      check_stop();
      auto so = spool_options(c);
      so.dir = c.work.path() / ("crypto-" + std::string(variants[v].name));
      if (variants[v].sealed) so.key_file = c.work.path() / "bench-spool.key";
      so.aead = variants[v].aead;
      Sample smp;
      {
        agent::SpoolStore spool(so, c.log);
        const double cpu0 = thread_cpu_s();
        const auto t0 = Clock::now();
        for (std::uint64_t i = 0; i < c.opt.events; ++i) spool.append(make_event(i));
        smp.fill_s = seconds_since(t0);
        smp.fill_cpu_s = thread_cpu_s() - cpu0;
      }
      smp.bytes = static_cast<double>(dir_bytes(so.dir, ".seg"));
      auto t0 = Clock::now();
      agent::SpoolStore spool(so, c.log);
      smp.reopen_s = seconds_since(t0);
      std::vector<IndicatorEvent> events;
      t0 = Clock::now();
      for (std::uint64_t cursor = spool.first_seq(); cursor < spool.next_seq();) {
        events.clear();
        if (spool.read(cursor, c.opt.batch, events) == 0) break;
        cursor = events.back().seq + 1;
      }
      smp.read_s = seconds_since(t0);
      spool.release_through(spool.next_seq() - 1);
      samples[v].push_back(smp);
      std::error_code ec;
      fs::remove_all(so.dir, ec);
    }
  }
  std::cerr << "done\n";
  auto median = [&](std::size_t v, double Sample::*field) {
    std::vector<double> xs;
    for (const auto& smp : samples[v]) xs.push_back(smp.*field);
    std::sort(xs.begin(), xs.end());
    return xs[xs.size() / 2];
  };
  const double n = static_cast<double>(c.opt.events);
  std::vector<std::string> cols, titles;
  for (const auto& v : variants) {
    cols.push_back(v.name);
    titles.push_back(v.title);
  }
  auto row = [&](const char* key, const char* label, const char* unit, int precision, auto fn) {
    std::vector<double> vals;
    for (std::size_t v = 0; v < variants.size(); ++v) vals.push_back(fn(v));
    c.report.add_columns(key, label, cols, vals, unit, precision);
  };
  c.report.section("fill_encrypted", "fill, plaintext vs encrypted spool (same run, median of " +
                                         std::to_string(kCryptoRounds) + " interleaved rounds)");
  c.report.columns(titles);
  row("events_per_s", "events appended/s", "events/s", 0,
      [&](std::size_t v) { return n / median(v, &Sample::fill_s); });
  row("cpu_us_per_event", "CPU per event appended (this thread)", "us/event", 3,
      [&](std::size_t v) { return 1e6 * median(v, &Sample::fill_cpu_s) / n; });
  row("bytes_per_event", "bytes per event on disk", "bytes", 1,
      [&](std::size_t v) { return median(v, &Sample::bytes) / n; });
  row("reopen_seconds", "re-open (recovery scan of N)", "s", 3,
      [&](std::size_t v) { return median(v, &Sample::reopen_s); });
  row("read_us_per_event", "read back, per event", "us/event", 3,
      [&](std::size_t v) { return 1e6 * median(v, &Sample::read_s) / n; });
}

// 2. Mosquitto + subscriber, then an Agent over the full spool (re-opened: the
// "agent restarts after an outage" case). Timed until every event arrived and the
// backlog is empty.
double phase_drain(Context& c, Subscriber& sub, const std::string& broker_uri, const std::string& broker_pid) {
  auto so = spool_options(c);
  std::cerr << "re-opening spool... " << std::flush;
  auto t0 = Clock::now();
  auto spool = std::make_unique<agent::SpoolStore>(so, c.log);
  const double reopen_s = seconds_since(t0);
  const auto recovered = spool->recovery().events;
  std::cerr << recovered << " events recovered in " << reopen_s << " s\n";

  // The agent's own per-event work, single-threaded and without a broker: reading
  // events back from the spool (pread, CRC32C, decode) and encoding FlatBuffers batches.
  std::cerr << "timing spool read and batch encoding... " << std::flush;
  double read_s = 0, encode_s = 0;
  std::uint64_t read_n = 0;
  {
    std::vector<IndicatorEvent> events;
    EventBatch batch;
    batch.agent_id = kAgentId;
    batch.post_id = kPost;
    std::uint64_t cursor = spool->first_seq();
    while (cursor < spool->next_seq()) {
      check_stop();
      events.clear();
      auto r0 = Clock::now();
      spool->read(cursor, c.opt.batch, events);
      read_s += seconds_since(r0);
      if (events.empty()) break;
      cursor = events.back().seq + 1;
      read_n += events.size();
      batch.sent_at_ms = now_utc_ms();
      batch.events.swap(events);
      auto e0 = Clock::now();
      auto payload = encode_batch(batch);
      encode_s += seconds_since(e0);
      batch.events.swap(events);
    }
  }
  std::cerr << read_n << " events read in " << read_s << " s, encoded in " << encode_s << " s\n";

  agent::AgentConfig cfg;
  cfg.broker_uri = broker_uri;
  cfg.agent_id = kAgentId;
  cfg.post_id = kPost;
  cfg.allow_plaintext = true;
  cfg.spool = so;
  cfg.batch_max_events = c.opt.batch;
  cfg.max_inflight_batches = c.opt.inflight;
  cfg.confirm = agent::DeliveryConfirmMode::Broker;  // a plain subscriber, no aggregator to confirm
  sub.reset(c.opt.events);
  agent::Agent agent(cfg, c.catalogue, std::move(spool), c.log);
  c.events_topic = agent.events_topic();

  std::cerr << "draining " << c.opt.events << " events (batch " << c.opt.batch << ", in-flight " << c.opt.inflight
            << ")...\n";
  t0 = Clock::now();
  agent.start();
  // Timed from the connection on: a second Paho client in one process connects ~1-2 s
  // late (the library's shared threads wait out a timeout), which the real agent
  // process, with one client, does not see.
  const bool connected = agent.wait_until_connected(30s);
  const double connect_s = seconds_since(t0);
  const double cpu0 = self_cpu_s(), broker0 = broker_cpu_s(broker_pid);
  const auto threads0 = thread_cpu();
  t0 = Clock::now();
  bool done = connected &&
              wait_progress(
                  "draining", [&] { return sub.counts().unique >= c.opt.events && agent.stats().backlog.events == 0; },
                  [&] { return std::to_string(sub.counts().unique) + "/" + std::to_string(c.opt.events) + " events"; },
                  kDrainTimeout);
  const double drain_s = seconds_since(t0);
  const double cpu_s = self_cpu_s() - cpu0, broker_s = broker_cpu_s(broker_pid) - broker0;
  auto counts = sub.counts();
  auto stats = agent.stats();
  std::cerr << "  " << (done ? "drained " : "TIMED OUT after ") << counts.unique << " events in " << drain_s << " s\n"
            << "  CPU by thread: " << thread_cpu_delta(threads0) << "; mosquitto " << broker_s << " s\n";

  const double rss_kb = static_cast<double>(status_kb("self", "VmRSS"));
  const double hwm_kb = static_cast<double>(status_kb("self", "VmHWM"));
  agent.stop();

  c.report.section("drain", "drain: Agent over the full spool -> Mosquitto -> Paho subscriber (QoS 1)");
  c.report.add_text("completed", "completed", done ? "yes" : connected ? "NO (timed out)" : "NO (no connection)");
  c.report.add("reopen_seconds", "spool re-open (recovery scan)", reopen_s, "s", 2);
  c.report.add("read_us_per_event", "spool read+decode, 1 thread, no broker", read_n ? 1e6 * read_s / read_n : 0,
               "us/event", 3);
  c.report.add("encode_us_per_event", "batch encode, 1 thread, no broker", read_n ? 1e6 * encode_s / read_n : 0,
               "us/event", 3);
  c.report.add("connect_seconds", "connect (in-process, see README)", connect_s, "s", 2);
  const double rate = static_cast<double>(counts.unique) / drain_s;
  c.report.add("events_per_s", "events drained/s", rate, "events/s");
  c.report.add("seconds", "time to drain N (after connect)", drain_s, "s", 2);
  c.report.add("messages_sent", "MQTT messages sent (acked batches)", static_cast<double>(stats.batches_sent), "");
  c.report.add("messages_received", "MQTT messages received", static_cast<double>(counts.messages), "");
  c.report.add("wire_bytes_per_event", "payload bytes on the wire per event",
               counts.events ? static_cast<double>(counts.payload_bytes) / counts.events : 0, "bytes", 1);
  c.report.add("payload_bytes_per_message", "payload bytes per message",
               counts.messages ? static_cast<double>(counts.payload_bytes) / counts.messages : 0, "bytes");
  c.report.add("duplicates", "duplicate events received", static_cast<double>(counts.duplicates), "");
  c.report.add("reconnects", "agent reconnects", static_cast<double>(stats.reconnects), "");
  c.report.add("process_cpu_seconds", "bench process CPU (agent + subscriber)", cpu_s, "s", 2);
  c.report.add("broker_cpu_seconds", "mosquitto CPU", broker_s, "s", 2);
  c.report.section("rss_self", "memory: this benchmark process (agent + subscriber + bench), after the drain");
  c.report.add("vm_rss_kib", "VmRSS", rss_kb, "KiB");
  c.report.add("vm_hwm_kib", "VmHWM (peak)", hwm_kb, "KiB");
  return rate;
}

// 3. The real postwatch-agent binary: idle RSS, then RSS and CPU while fed 100 events/s.
void phase_child(Context& c, Subscriber& sub, const std::string& broker_uri) {
  const std::string bin = POSTWATCH_BENCH_AGENT_BINARY;
  c.report.section("agent_process", "memory/CPU: postwatch-agent run (child process, own spool)");
  if (!fs::exists(bin)) {
    c.report.add_text("error", "skipped", bin + " not found");
    return;
  }
  auto cfg_file = c.work.path() / "agent.json";
  std::ofstream(cfg_file) << nlohmann::json{{"broker_uri", broker_uri},
                                            {"allow_plaintext", true},
                                            {"agent_id", kChildAgentId},
                                            {"post_id", kPost},
                                            {"catalogue_file", test::catalogue_path().string()},
                                            {"delivery", {{"confirm", "broker"}}},  // no aggregator here
                                            {"spool", {{"dir", (c.work.path() / "child-spool").string()}}}}
                                 .dump(2);
  const std::uint64_t feed_n = kFeedRate * static_cast<std::uint64_t>(kFeedWindow.count());
  sub.reset(feed_n);
  std::cerr << "starting " << bin << ", idle for " << kIdleWindow.count() << " s...\n";
  test::ChildProcess child({bin, "run", "--config", cfg_file.string()}, c.work.path() / "agent.log", true);
  const std::string pid = std::to_string(child.pid());
  std::this_thread::sleep_for(300ms);  // exec, config, catalogue, connect
  const double idle_cpu0 = proc_stat(pid).cpu_s;
  auto t0 = Clock::now();
  while (Clock::now() - t0 < kIdleWindow) {
    check_stop();
    std::this_thread::sleep_for(50ms);
  }
  const double idle_cpu = proc_stat(pid).cpu_s - idle_cpu0;
  const double idle_wall = seconds_since(t0);
  if (!child.running()) {
    std::cerr << "postwatch-agent exited early:\n" << child.log() << "\n";
    c.report.add_text("error", "skipped", "postwatch-agent exited early (see stderr)");
    return;
  }
  const double idle_rss = static_cast<double>(status_kb(pid, "VmRSS"));

  std::cerr << "feeding it " << kFeedRate << " events/s for " << kFeedWindow.count() << " s...\n";
  const double cpu0 = proc_stat(pid).cpu_s;
  t0 = Clock::now();
  for (std::uint64_t i = 0; i < feed_n; ++i) {
    check_stop();
    std::this_thread::sleep_until(t0 + std::chrono::microseconds(1'000'000 / kFeedRate) * i);
    if (!child.write_stdin(event_line(i))) break;
  }
  std::this_thread::sleep_until(t0 + kFeedWindow);
  const double busy_cpu = proc_stat(pid).cpu_s - cpu0;
  const double busy_wall = seconds_since(t0);
  const double busy_rss = static_cast<double>(status_kb(pid, "VmRSS"));
  const double busy_hwm = static_cast<double>(status_kb(pid, "VmHWM"));
  test::wait_until([&] { return sub.counts().unique >= feed_n; }, 5s);
  const auto delivered = sub.counts().unique;

  child.close_stdin();
  child.signal(SIGTERM);
  if (child.wait(10s) == -1) child.signal(SIGKILL);
  child.wait(5s);

  c.report.add("idle_vm_rss_kib", "VmRSS idle (connected, empty spool)", idle_rss, "KiB");
  c.report.add("idle_cpu_percent", "CPU idle", 100.0 * idle_cpu / idle_wall, "% of one core", 2);
  c.report.add("busy_vm_rss_kib", "VmRSS after 5 s at 100 events/s", busy_rss, "KiB");
  c.report.add("busy_vm_hwm_kib", "VmHWM (peak) so far", busy_hwm, "KiB");
  c.report.add("busy_cpu_percent", "CPU at 100 events/s (utime+stime)", 100.0 * busy_cpu / busy_wall, "% of one core",
               2);
  c.report.add("delivered", "events delivered (of 500)", static_cast<double>(delivered), "");
}

// 4. The ceiling: a bare Paho publisher, same payload bytes, same QoS and window, no spool.
double phase_baseline(Context& c, Subscriber& sub, const std::string& broker_uri, const std::string& broker_pid) {
  std::cerr << "baseline: pre-encoding " << c.opt.events << " events in batches of " << c.opt.batch << "... "
            << std::flush;
  auto t0 = Clock::now();
  std::vector<std::vector<std::uint8_t>> payloads;
  {
    EventBatch batch;
    batch.agent_id = kAgentId;
    batch.post_id = kPost;
    for (std::uint64_t first = 0; first < c.opt.events; first += c.opt.batch) {
      batch.events.clear();
      for (std::uint64_t i = first; i < std::min<std::uint64_t>(first + c.opt.batch, c.opt.events); ++i) {
        batch.events.push_back(make_event(i));
        batch.events.back().seq = i + 1;
      }
      batch.sent_at_ms = now_utc_ms();
      payloads.push_back(encode_batch(batch));
    }
  }
  std::cerr << payloads.size() << " payloads in " << seconds_since(t0) << " s\n";

  sub.reset(c.opt.events);
  mqtt::async_client pub(broker_uri, "pw-bench-baseline");
  auto opts = mqtt::connect_options_builder()
                  .clean_session(true)
                  .keep_alive_interval(20s)
                  .max_inflight(static_cast<int>(c.opt.inflight * 2))  // as the agent sets it
                  .finalize();
  std::cerr << "baseline: publishing...\n";
  t0 = Clock::now();
  pub.connect(opts)->wait();
  const double connect_s = seconds_since(t0);
  // Several rounds over the one connection; the median is the ceiling (one round
  // of ~1 s on a shared 2-core machine varies by up to 2x).
  struct Round {
    bool done = false;
    double total_s = 0, publish_s = 0, cpu_s = 0, broker_s = 0;
    Subscriber::Counts counts;
  };
  std::vector<Round> rounds;
  for (int r = 1; r <= kBaselineRounds; ++r) {
    sub.reset(c.opt.events);
    Round rd;
    const double cpu0 = self_cpu_s(), broker0 = broker_cpu_s(broker_pid);
    const auto threads0 = thread_cpu();
    t0 = Clock::now();
    std::deque<mqtt::delivery_token_ptr> window;
    for (const auto& p : payloads) {
      if (window.size() >= c.opt.inflight) {
        window.front()->wait();
        window.pop_front();
        check_stop();
      }
      window.push_back(pub.publish(c.events_topic, p.data(), p.size(), 1, false));
    }
    for (auto& t : window) t->wait();
    rd.publish_s = seconds_since(t0);
    rd.done = wait_progress(
        "baseline", [&] { return sub.counts().unique >= c.opt.events; },
        [&] { return std::to_string(sub.counts().unique) + "/" + std::to_string(c.opt.events) + " events"; },
        kBaselineTimeout);
    rd.total_s = seconds_since(t0);
    rd.cpu_s = self_cpu_s() - cpu0;
    rd.broker_s = broker_cpu_s(broker_pid) - broker0;
    rd.counts = sub.counts();
    std::cerr << "  round " << r << ": " << (rd.done ? "delivered " : "TIMED OUT after ") << rd.counts.unique
              << " events in " << rd.total_s << " s\n  CPU by thread: " << thread_cpu_delta(threads0) << "; mosquitto "
              << rd.broker_s << " s\n";
    rounds.push_back(rd);
    if (!rd.done) break;
  }
  try {
    pub.disconnect(500)->wait_for(1s);
  } catch (const mqtt::exception&) {
  }
  auto by_time = rounds;
  std::sort(by_time.begin(), by_time.end(), [](const Round& a, const Round& b) { return a.total_s < b.total_s; });
  const Round& med = by_time[by_time.size() / 2];
  auto events_per_s = [](const Round& r) { return static_cast<double>(r.counts.unique) / r.total_s; };
  const bool all_done = std::all_of(rounds.begin(), rounds.end(), [](const Round& r) { return r.done; });

  c.report.section("baseline", "baseline: bare Paho publisher, same pre-encoded payloads, QoS 1, same window");
  c.report.add_text("completed", "completed",
                    all_done ? std::to_string(rounds.size()) + " rounds, median shown" : "NO (timed out)");
  c.report.add("messages_per_s", "messages/s", static_cast<double>(med.counts.messages) / med.total_s, "msg/s");
  const double rate = events_per_s(med);
  c.report.add("events_per_s", "events/s", rate, "events/s");
  c.report.add("events_per_s_fastest", "events/s, fastest round", events_per_s(by_time.front()), "events/s");
  c.report.add("events_per_s_slowest", "events/s, slowest round", events_per_s(by_time.back()), "events/s");
  c.report.add("connect_seconds", "connect (in-process, see README)", connect_s, "s", 2);
  c.report.add("seconds", "time for N (after connect)", med.total_s, "s", 2);
  c.report.add("publish_seconds", "of which until the last PUBACK", med.publish_s, "s", 2);
  c.report.add("process_cpu_seconds", "bench process CPU (publisher + subscriber)", med.cpu_s, "s", 2);
  c.report.add("broker_cpu_seconds", "mosquitto CPU", med.broker_s, "s", 2);
  return rate;
}

int run(const Options& opt) {
  Context c;
  c.opt = opt;
  c.catalogue = std::make_shared<const IndicatorCatalogue>(IndicatorCatalogue::load(test::catalogue_path()));
  c.log = std::make_shared<spdlog::logger>("agent", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  c.log->set_level(spdlog::level::warn);
  c.report.config("events", opt.events);
  c.report.config("batch_max_events", opt.batch);
  c.report.config("max_inflight_batches", opt.inflight);
  c.report.config("cpus", std::thread::hardware_concurrency());
  c.report.config("started_at_ms", now_utc_ms());

  phase_fill(c);
  phase_fill_encrypted(c);

  std::cerr << "starting mosquitto and the subscriber...\n";
  test::MosquittoBroker broker("", /*persistent=*/false);
  const std::string broker_pid = find_child("mosquitto");
  Subscriber sub(broker.uri());
  const double drain_rate = phase_drain(c, sub, broker.uri(), broker_pid);
  phase_child(c, sub, broker.uri());
  const double baseline_rate = phase_baseline(c, sub, broker.uri(), broker_pid);
  c.report.section("summary", "summary");
  c.report.add("drain_to_baseline", "agent drain rate / baseline rate",
               baseline_rate > 0 ? drain_rate / baseline_rate : 0, "", 2);

  std::cout << "postwatch-bench-agent: " << opt.events << " events, batch " << opt.batch << ", in-flight "
            << opt.inflight << ", " << std::thread::hardware_concurrency() << " CPUs, broker " << broker.uri()
            << "\n\n";
  c.report.print(std::cout);
  if (!opt.json_file.empty()) {
    std::ofstream out(opt.json_file);
    out << c.report.json().dump(2) << "\n";
    if (!out) {
      std::cerr << "postwatch-bench-agent: cannot write " << opt.json_file << "\n";
      return 1;
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  try {
    int code = 2;
    auto opt = parse_options(argc, argv, code);
    if (!opt) return code;
    return run(*opt);
  } catch (const std::invalid_argument& e) {
    std::cerr << "postwatch-bench-agent: " << e.what() << "\n" << kUsage;
    return 2;
  } catch (const Interrupted&) {
    std::cerr << "postwatch-bench-agent: interrupted; stopped every process it started\n";
    return 130;
  } catch (const std::exception& e) {
    std::cerr << "postwatch-bench-agent: " << e.what() << "\n";
    return 1;
  }
}
