// Phase 2b (signed batches against unsigned ones) and phase 3 (latency at fixed rates).
#include "e2e/phases.hpp"

#include "bench_events.hpp"
#include "e2e/prometheus_scrape.hpp"
#include "postwatch/clock.hpp"
#include "postwatch/enrolment.hpp"

#include <mqtt/async_client.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <iostream>
#include <stdexcept>
#include <thread>

namespace postwatch::bench::e2e {

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

}  // namespace postwatch::bench::e2e
