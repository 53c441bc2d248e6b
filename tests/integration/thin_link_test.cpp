// An agent on a shaped link (tests/support/link_shaper.hpp): 64 kbit/s, 600 ms round trip, 2 %
// of segments late by a round trip, and an outage. With its cap below the link's rate and a
// backlog draining, an urgent reading crosses within seconds, also right after the outage, and
// nothing is lost or counted twice on the way.
#include "postwatch/agent/agent.hpp"
#include "postwatch/agent/spool_store.hpp"
#include "support/aggregator_process.hpp"
#include "support/link_shaper.hpp"
#include "support/loopback_agent_config.hpp"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <cstdio>

using namespace postwatch;
using namespace postwatch::test;

namespace {

std::uint64_t stat(AggregatorProcess& agg, const char* name) {
  auto s = agg.get("/api/v1/stats");
  return s.is_object() && s.contains(name) ? s[name].get<std::uint64_t>() : 0;
}

// Seconds until the aggregator has applied `n` urgent events, or a negative number.
double seconds_until_urgent(AggregatorProcess& agg, std::uint64_t n, std::chrono::seconds within) {
  const auto t0 = std::chrono::steady_clock::now();
  if (!wait_until([&] { return stat(agg, "events_urgent") >= n; }, within, std::chrono::milliseconds(50))) return -1;
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

TEST(ThinLink, AnUrgentReadingCrossesA64KbitLinkWithA600msRoundTripWhileTheBacklogDrains) {
  TempDir dir;
  MosquittoBroker broker;
  AggregatorProcess aggregator(broker, dir);
  LinkShaper link(broker.port(), LinkProfile{64'000, std::chrono::milliseconds(600), 0.02});

  auto cfg = loopback_agent_config(link.uri(), "sat-1", "bamako");
  cfg.heartbeat_interval = std::chrono::seconds(5);
  cfg.uplink_max_kbit_s = 48;  // below the link's 64: the agent's queue, not the link's, holds the backlog
  cfg.compression = BatchCompression::ZstdDictionary;
  agent::SpoolOptions spool;
  spool.dir = dir.path() / "spool";
  spool.fsync = agent::FsyncPolicy::Never;
  auto catalogue = std::make_shared<const IndicatorCatalogue>(IndicatorCatalogue::load(catalogue_path()));
  agent::Agent a(cfg, catalogue, std::make_unique<agent::SpoolStore>(spool, spdlog::default_logger()),
                 spdlog::default_logger());
  constexpr int kBacklog = 20'000;
  for (int i = 0; i < kBacklog; ++i)
    ASSERT_TRUE(a.submit({0, 0, "drug_seizures", ValueKind::Count, double(i % 9), "", "", {}}).accepted);
  a.start();
  ASSERT_TRUE(wait_until([&] { return a.stats().sent_through_seq > 0; }, std::chrono::seconds(30)))
      << a.stats().last_error;

  ASSERT_TRUE(a.submit({0, 0, "terrorism_threat_level", ValueKind::Level, 4, "", "", {}}).accepted);
  const double during_drain = seconds_until_urgent(aggregator, 1, std::chrono::seconds(20));
  EXPECT_GT(during_drain, 0) << "the urgent reading did not cross within 20 s";

  // An outage of 5 s; an urgent reading taken during it crosses once the agent is back.
  link.set_down(true);
  ASSERT_TRUE(wait_until([&] { return !a.stats().connected; }, std::chrono::seconds(30)));
  ASSERT_TRUE(a.submit({0, 0, "post_security_posture", ValueKind::Level, 5, "", "", {}}).accepted);
  std::this_thread::sleep_for(std::chrono::seconds(5));  // the outage itself: nothing to wait on
  link.set_down(false);
  const double after_outage = seconds_until_urgent(aggregator, 2, std::chrono::seconds(45));
  EXPECT_GT(after_outage, 0) << "the urgent reading did not cross within 45 s of the link's return";

  const auto st = a.stats();
  std::printf(
      "64 kbit/s, 600 ms RTT, 2 %% late segments, cap 48 kbit/s, %d backlog events: urgent reading across "
      "in %.2f s while draining, %.2f s after a 5 s outage ended (reconnect backoff included); %llu events "
      "still in the spool\n",
      kBacklog, during_drain, after_outage, static_cast<unsigned long long>(st.backlog.events));
  EXPECT_GT(st.backlog.events, 0u) << "the backlog was still draining: the readings jumped it";
  EXPECT_EQ(stat(aggregator, "events_gaps"), 0u);
  EXPECT_EQ(stat(aggregator, "events_reordered"), 0u);
  a.stop();
}
