// Phases 1 (ceiling) and 2 (e2e), and how one run through the aggregator is measured.
#include "e2e/phases.hpp"

#include "bench_events.hpp"
#include "postwatch/clock.hpp"

#include "e2e/counting_subscriber.hpp"

#include <nlohmann/json.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <iostream>
#include <stdexcept>
#include <thread>

namespace postwatch::bench::e2e {

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

}  // namespace postwatch::bench::e2e
