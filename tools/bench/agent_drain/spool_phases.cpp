// Phases 1 and 1b (spool fill, plaintext and encrypted) and 2 (drain over Mosquitto).
#include "agent_drain/phases.hpp"

#include "postwatch/clock.hpp"
#include "postwatch/topics.hpp"

#include <mqtt/async_client.h>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <csignal>
#include <cstring>
#include <deque>
#include <fstream>
#include <functional>
#include <iostream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

namespace postwatch::bench::agent_drain {

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
  c.report.text("completed", "completed", done ? "yes" : connected ? "NO (timed out)" : "NO (no connection)");
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

}  // namespace postwatch::bench::agent_drain
