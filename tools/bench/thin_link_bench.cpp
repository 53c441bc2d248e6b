// postwatch-bench-thin-link: a post on a thin link (issue 19, docs/performance.md "Thin links").
// One agent reaches a real Mosquitto and aggregator through a shaped link (tests/support/
// link_shaper.hpp: 64 kbit/s, 600 ms round trip, 2 % of segments a round trip late) with a
// 24-hour backlog in its spool (--backlog events, 43 200 = a post at one reading every two
// seconds), and drains it for --seconds. Three urgent readings go in on the way, one of them
// during a 10 s outage. Three runs, same link, same backlog:
//   - baseline: no cap, plain batches (the link's own buffer and the sockets' fill up);
//   - capped:   uplink.max_kbit_s below the link's rate, plain batches;
//   - capped + zstd-dictionary.
// For each: events/s confirmed, MQTT bytes per event over the link, and the time each urgent
// reading took to reach the aggregator. Prints figures; never asserts timing.
#include "postwatch/agent/agent.hpp"
#include "postwatch/agent/spool_store.hpp"
#include "postwatch/catalogue.hpp"
#include "support/aggregator_process.hpp"
#include "support/link_shaper.hpp"

#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

using namespace postwatch;
using namespace postwatch::test;
using Clock = std::chrono::steady_clock;

namespace {

struct Setup {
  std::uint64_t cap_kbit_s = 0;
  BatchCompression compression = BatchCompression::None;
  const char* label = "";
};

struct Result {
  double events_per_s = 0, bytes_per_event = 0;
  std::vector<double> urgent_s;  // per reading; the outage's is measured from the link's return
  std::uint64_t left = 0;
};

std::uint64_t urgent_applied(AggregatorProcess& agg) {
  auto s = agg.get("/api/v1/stats");
  return s.is_object() && s.contains("events_urgent") ? s["events_urgent"].get<std::uint64_t>() : 0;
}

Result run(const Setup& setup, const std::shared_ptr<const IndicatorCatalogue>& catalogue, int backlog, double seconds,
           const LinkProfile& profile, int index) {
  TempDir dir;
  MosquittoBroker broker;
  AggregatorProcess aggregator(broker, dir);
  LinkShaper link(broker.port(), profile);
  auto log = std::make_shared<spdlog::logger>("bench", std::make_shared<spdlog::sinks::null_sink_mt>());
  agent::AgentConfig cfg;
  cfg.broker_uri = link.uri();
  cfg.agent_id = "thin-" + std::to_string(index);
  cfg.post_id = "bamako";
  cfg.allow_plaintext = true;
  cfg.uplink_max_kbit_s = setup.cap_kbit_s;
  cfg.compression = setup.compression;
  agent::SpoolOptions spool;
  spool.dir = dir.path() / "spool";
  spool.fsync = agent::FsyncPolicy::Never;
  agent::Agent a(cfg, catalogue, std::make_unique<agent::SpoolStore>(spool, log), log);
  // A day of readings, oldest first, as a post that lost its link for 24 hours would hold them.
  const std::int64_t now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  const char* indicators[] = {"drug_seizures", "violent_extremism_level", "displaced_people", "cyber_incidents"};
  for (int i = 0; i < backlog; ++i) {
    IndicatorEvent e{0, now_ms - (backlog - i) * 2000LL, indicators[i % 4], ValueKind::Count, double(i % 5), "", "",
                     {}};
    if (i % 4 == 1) e.kind = ValueKind::Level, e.number = 1 + i % 5;
    if (i % 4 == 2) e.kind = ValueKind::Gauge, e.number = 1000 + i % 50;
    a.submit(e);
  }
  a.start();
  if (!wait_until([&] { return a.stats().sent_through_seq > 0; }, std::chrono::seconds(60))) {
    std::fprintf(stderr, "%s: the agent did not get through the link: %s\n", setup.label, a.stats().last_error.c_str());
    return {};
  }
  const auto bytes0 = link.bytes_up();
  const auto sent0 = a.stats().sent;
  const auto started = Clock::now();
  auto at = [&](double s) { return started + std::chrono::duration<double>(s); };
  Result r;
  // Seconds until the aggregator has applied `n` urgent readings, from now.
  auto urgent = [&](std::uint64_t n) {
    const auto from = Clock::now();
    if (wait_until([&] { return urgent_applied(aggregator) >= n; }, std::chrono::seconds(120),
                   std::chrono::milliseconds(50)))
      r.urgent_s.push_back(std::chrono::duration<double>(Clock::now() - from).count());
    else
      r.urgent_s.push_back(-1);
  };
  // Reading 1 a quarter in; the outage from half-way for 10 s with reading 2 inside it;
  // reading 3 at three quarters.
  std::this_thread::sleep_until(at(seconds / 4));
  a.submit({0, 0, "terrorism_threat_level", ValueKind::Level, 4, "", "", {}});
  urgent(1);
  std::this_thread::sleep_until(at(seconds / 2));
  link.set_down(true);
  std::this_thread::sleep_for(std::chrono::seconds(5));
  a.submit({0, 0, "post_security_posture", ValueKind::Level, 5, "", "", {}});
  std::this_thread::sleep_for(std::chrono::seconds(5));
  link.set_down(false);
  urgent(2);
  std::this_thread::sleep_until(at(seconds * 3 / 4));
  a.submit({0, 0, "terrorism_threat_level", ValueKind::Level, 5, "", "", {}});
  urgent(3);
  std::this_thread::sleep_until(at(seconds));
  const double elapsed = std::chrono::duration<double>(Clock::now() - started).count();
  const auto st = a.stats();
  const auto sent = st.sent - sent0;
  r.events_per_s = static_cast<double>(sent) / elapsed;
  r.bytes_per_event = sent ? static_cast<double>(link.bytes_up() - bytes0) / static_cast<double>(sent) : 0;
  r.left = st.backlog.events;
  a.stop();
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 90;
  int backlog = 43'200;
  LinkProfile profile;
  std::uint64_t cap = 48;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--seconds" && i + 1 < argc)
      seconds = std::max(30.0, std::stod(argv[++i]));
    else if (a == "--backlog" && i + 1 < argc)
      backlog = std::stoi(argv[++i]);
    else if (a == "--cap" && i + 1 < argc)
      cap = std::stoull(argv[++i]);
    else {
      std::cerr << "usage: postwatch-bench-thin-link [--seconds S (>= 30)] [--backlog EVENTS] [--cap KBIT_S]\n";
      return a == "--help" || a == "-h" ? 0 : 2;
    }
  }
  auto catalogue = std::make_shared<const IndicatorCatalogue>(IndicatorCatalogue::load(catalogue_path()));
  std::printf(
      "thin link: %llu kbit/s, %lld ms round trip, %.0f %% of segments a round trip late, a 10 s outage; %d events "
      "of backlog, %.0f s of drain per run\n",
      static_cast<unsigned long long>(profile.bits_per_s / 1000), static_cast<long long>(profile.rtt.count()),
      profile.loss * 100, backlog, seconds);
  const std::string capped = "cap " + std::to_string(cap) + " kbit/s";
  const std::string capped_z = capped + " + zstd-dictionary";
  const Setup setups[] = {{0, BatchCompression::None, "baseline: no cap, plain"},
                          {cap, BatchCompression::None, capped.c_str()},
                          {cap, BatchCompression::ZstdDictionary, capped_z.c_str()}};
  int index = 0;
  for (const auto& s : setups) {
    const Result r = run(s, catalogue, backlog, seconds, profile, ++index);
    std::printf("  %-34s %7.1f events/s  %6.1f bytes/event  urgent reading at the aggregator after", s.label,
                r.events_per_s, r.bytes_per_event);
    for (std::size_t i = 0; i < r.urgent_s.size(); ++i) {
      if (r.urgent_s[i] < 0)
        std::printf(" (not within 120 s)");
      else
        std::printf(" %.2f s%s", r.urgent_s[i], i == 1 ? " (from the link's return)" : "");
    }
    std::printf("; %llu events left\n", static_cast<unsigned long long>(r.left));
  }
  return 0;
}
