// Urgent readings jump the queue (docs/agent.md, "Urgent readings"): an agent with 50 000 events
// in its spool gets a terrorism threat level reading, which the catalogue marks urgent. It reaches
// the aggregator within seconds while the backlog drains behind it, and dedupe and confirmation
// still hold over the two lanes: every event stored once, no gap, no resend, all confirmed.
#include "postwatch/agent/agent.hpp"
#include "postwatch/agent/spool_store.hpp"
#include "support/aggregator_process.hpp"
#include "support/loopback_agent_config.hpp"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <cstdio>

using namespace postwatch;
using namespace postwatch::test;

namespace {

constexpr int kBacklog = 50'000;

agent::AgentConfig thin_agent(const MosquittoBroker& broker, const std::string& id, std::uint32_t kbit_s) {
  auto cfg = loopback_agent_config(broker.uri(), id, "bamako");
  cfg.heartbeat_interval = std::chrono::seconds(2);
  cfg.uplink_max_kbit_s = kbit_s;
  return cfg;
}

std::unique_ptr<agent::SpoolStore> spool_in(const TempDir& dir, const std::string& name) {
  agent::SpoolOptions o;
  o.dir = dir.path() / name;
  o.fsync = agent::FsyncPolicy::Never;  // the test is about the order on the wire, not the disk
  return std::make_unique<agent::SpoolStore>(o, spdlog::default_logger());
}

void fill_backlog(agent::Agent& a) {
  for (int i = 0; i < kBacklog; ++i)
    ASSERT_TRUE(a.submit({0, 0, "drug_seizures", ValueKind::Count, double(i % 7), "", "", {}}).accepted);
}

std::uint64_t ingest_counter(AggregatorProcess& agg, const char* name) {
  auto s = agg.get("/api/v1/stats");
  return s.is_object() && s.contains(name) ? s[name].get<std::uint64_t>() : 0;
}

}  // namespace

TEST(UrgentLane, AnUrgentEventBehind50000BacklogEventsReachesTheAggregatorWithinSeconds) {
  TempDir dir;
  MosquittoBroker broker;
  AggregatorProcess aggregator(broker, dir);
  auto catalogue = std::make_shared<const IndicatorCatalogue>(IndicatorCatalogue::load(catalogue_path()));
  // 64 kbit/s: the backlog is several minutes of this link.
  agent::Agent a(thin_agent(broker, "thin-urgent", 64), catalogue, spool_in(dir, "spool"), spdlog::default_logger());
  fill_backlog(a);
  a.start();
  ASSERT_TRUE(wait_until([&] { return a.stats().sent_through_seq > 0; }, std::chrono::seconds(20)));

  const auto t0 = std::chrono::steady_clock::now();
  auto r = a.submit({0, 0, "terrorism_threat_level", ValueKind::Level, 5, "", "", {}});
  ASSERT_TRUE(r.accepted);
  ASSERT_EQ(r.seq, std::uint64_t{kBacklog} + 1);
  ASSERT_TRUE(wait_until([&] { return ingest_counter(aggregator, "events_urgent") >= 1; }, std::chrono::seconds(10)))
      << "the urgent event did not arrive within 10 s";
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto st = a.stats();
  std::printf(
      "urgent event behind %d backlog events at 64 kbit/s: at the aggregator after %.2f s, %llu events "
      "still in the spool\n",
      kBacklog, seconds, static_cast<unsigned long long>(st.backlog.events));
  EXPECT_LT(seconds, 5.0);
  EXPECT_GT(st.backlog.events, std::uint64_t{kBacklog} * 9 / 10) << "it jumped the queue, not waited for it";
  EXPECT_LT(st.sent_through_seq, std::uint64_t{kBacklog} / 10) << "the main lane's position is its own";

  // The aggregator applied it: the post's events hold it under its own seq.
  auto events = aggregator.get("/api/v1/posts/bamako/events?indicator=terrorism_threat_level");
  ASSERT_TRUE(events.is_object()) << events.dump();
  bool found = false;
  for (const auto& e : events["events"]) found |= e["seq"] == r.seq && e["value"] == 5;
  EXPECT_TRUE(found) << events.dump(1);

  // Two heartbeats later: the unsent seqs below it were not taken for holes.
  const auto hb = a.stats().heartbeats_sent;
  ASSERT_TRUE(wait_until([&] { return a.stats().heartbeats_sent >= hb + 2; }, std::chrono::seconds(10)));
  EXPECT_EQ(a.stats().resend_requests, 0u);
  EXPECT_EQ(ingest_counter(aggregator, "events_reordered"), 0u);
  EXPECT_EQ(ingest_counter(aggregator, "events_gaps"), 0u);
  a.stop();
}

TEST(UrgentLane, TwoLanesStillStoreEveryEventOnceAndConfirmThemAll) {
  TempDir dir;
  MosquittoBroker broker;
  AggregatorProcess aggregator(broker, dir);
  auto catalogue = std::make_shared<const IndicatorCatalogue>(IndicatorCatalogue::load(catalogue_path()));
  agent::Agent a(thin_agent(broker, "fast-urgent", 0), catalogue, spool_in(dir, "spool"), spdlog::default_logger());
  fill_backlog(a);
  a.start();
  ASSERT_TRUE(wait_until([&] { return a.stats().sent_through_seq > 0; }, std::chrono::seconds(20)));
  // A few urgent readings while the backlog drains, and a post security posture at red.
  int urgent = 0;
  for (int i = 0; i < 5; ++i, ++urgent)
    ASSERT_TRUE(a.submit({0, 0, "terrorism_threat_level", ValueKind::Level, double(1 + i), "", "", {}}).accepted);
  ASSERT_TRUE(a.submit({0, 0, "post_security_posture", ValueKind::Level, 5, "", "", {}}).accepted);
  ++urgent;
  ASSERT_TRUE(a.wait_until_drained(std::chrono::seconds(90))) << "not every event was confirmed";
  const auto st = a.stats();
  EXPECT_GT(st.urgent_sent, 0u) << "the drain was too quick for the urgent lane to be used";
  EXPECT_EQ(st.confirmed, std::uint64_t{kBacklog} + urgent);
  EXPECT_EQ(ingest_counter(aggregator, "events_accepted"), std::uint64_t{kBacklog} + urgent);
  EXPECT_EQ(ingest_counter(aggregator, "events_gaps"), 0u);
  EXPECT_EQ(ingest_counter(aggregator, "events_duplicate"), 0u) << "the main lane skipped what the urgent lane sent";
  EXPECT_EQ(st.resend_requests, 0u);
  a.stop();
}
