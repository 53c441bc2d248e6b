// A post on a thin link (docs/agent.md, "Thin links"): an agent capped at 64 kbit/s with a
// backlog far larger than a minute of the link can carry, through a proxy that counts every
// byte it sends to a real Mosquitto. Over a minute it stays within 5 % of the cap, and its
// heartbeat tells the aggregator the rate it achieved, its cap and its backlog.
#include "postwatch/agent/agent.hpp"
#include "postwatch/agent/memory_backlog.hpp"
#include "support/aggregator_process.hpp"
#include "support/loopback_agent_config.hpp"
#include "support/mqtt_fault_proxy.hpp"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <thread>

using namespace postwatch;
using namespace postwatch::test;

TEST(UplinkCap, A64KbitAgentStaysWithinFivePercentOfItsCapOverAMinute) {
  TempDir dir;
  MosquittoBroker broker;
  AggregatorProcess aggregator(broker, dir);
  MqttFaultProxy link(broker.port());
  auto cfg = loopback_agent_config(link.uri(), "thin-1", "bamako");
  cfg.heartbeat_interval = std::chrono::seconds(5);
  cfg.uplink_max_kbit_s = 64;  // 8000 bytes/s
  auto catalogue = std::make_shared<const IndicatorCatalogue>(IndicatorCatalogue::load(catalogue_path()));
  agent::Agent a(cfg, catalogue, std::make_unique<agent::MemoryBacklog>(100000), spdlog::default_logger());
  // About 60 bytes each on the wire at batch 500: 40 000 events are five minutes of this link.
  for (int i = 0; i < 40000; ++i)
    ASSERT_TRUE(a.submit({0, 0, "violent_extremism_level", ValueKind::Level, double(1 + i % 5), "", "", {}}).accepted);
  a.start();
  ASSERT_TRUE(wait_until([&] { return a.stats().sent_through_seq > 0; }, std::chrono::seconds(20)));

  // The measurement: a minute of the link, after the bucket's one-second head start is spent.
  std::this_thread::sleep_for(std::chrono::seconds(3));
  const auto from = link.bytes_from_clients();
  const auto t0 = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::seconds(60));
  const auto bytes = link.bytes_from_clients() - from;
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double rate = static_cast<double>(bytes) / seconds;
  std::printf("uplink capped at 8000 bytes/s: %.0f bytes/s over %.1f s (%+.1f %%), %llu events sent\n", rate, seconds,
              (rate / 8000 - 1) * 100, static_cast<unsigned long long>(a.stats().sent));
  EXPECT_LE(rate, 8000 * 1.05) << bytes << " bytes in " << seconds << " s";
  EXPECT_GE(rate, 8000 * 0.95) << bytes << " bytes in " << seconds << " s: the backlog should fill the link";
  EXPECT_LT(a.stats().sent, 40000u) << "the spool takes up what the link cannot carry";

  // The heartbeat tells the aggregator: its cap, the rate it achieved, its backlog.
  nlohmann::json metrics;
  ASSERT_TRUE(wait_until(
      [&] {
        auto j = aggregator.get("/api/v1/agents/bamako/thin-1");
        if (!j.is_object() || !j.contains("metrics")) return false;
        metrics = j["metrics"];
        return metrics["uplink_bytes_per_s"].get<std::uint64_t>() > 0;
      },
      std::chrono::seconds(15)));
  EXPECT_EQ(metrics["uplink_cap_bytes_per_s"], 8000);
  EXPECT_NEAR(metrics["uplink_bytes_per_s"].get<double>(), 8000, 8000 * 0.15) << metrics.dump();
  EXPECT_GT(metrics["spool_events"].get<std::uint64_t>(), 0u);
  EXPECT_GE(metrics["uplink_bytes"].get<std::uint64_t>(), bytes);
  a.stop();
}
