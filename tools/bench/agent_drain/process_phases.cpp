// Phase 3 (postwatch-agent run as a child process: RSS and CPU) and 4 (a bare Paho baseline).
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

void phase_child(Context& c, Subscriber& sub, const std::string& broker_uri) {
  const std::string bin = POSTWATCH_BENCH_AGENT_BINARY;
  c.report.section("agent_process", "memory/CPU: postwatch-agent run (child process, own spool)");
  if (!fs::exists(bin)) {
    c.report.text("error", "skipped", bin + " not found");
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
    c.report.text("error", "skipped", "postwatch-agent exited early (see stderr)");
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
  c.report.text("completed", "completed",
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

}  // namespace postwatch::bench::agent_drain
