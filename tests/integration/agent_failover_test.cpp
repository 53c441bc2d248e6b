// Agents with fallback brokers (docs/agent.md "Configuration", docs/scale-out.md): the fleet
// connects to one node of a 3-node NATS cluster, with the other two as broker_fallbacks. That
// node is SIGKILLed mid-stream and stays down; every agent carries on through the next node and
// every event is confirmed. Without fallbacks, those agents would wait for their node for ever.
#include "integration/jetstream_fleet_support.hpp"
#include "integration/jetstream_test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <iostream>

using namespace postwatch::test;
using namespace std::chrono_literals;
using nlohmann::json;

TEST(AgentFailover, AgentsWhoseNodeDiesCarryOnThroughTheNextAndEveryEventIsConfirmed) {
  NatsCluster nats{3};
  TempDir dir, sim_dir;
  // The instance reads and confirms through nodes 1 and 2; the agents start on node 0.
  // The first instance makes the stream, the buckets and 16 replicated consumers: slow under a sanitizer.
  AggregatorProcess agg(nats.mqtt_uri(1) + "," + nats.mqtt_uri(2), dir, cluster_args(nats, "one"), "one", 60s);
  ASSERT_TRUE(settles({&agg}, nats.partitions(), 30s));
  auto applied = [&] {
    auto c = agg.get("/api/v1/cluster");
    return c.is_object() ? c["counters"]["messages_applied"].get<std::uint64_t>() : 0;
  };
  const std::string brokers = nats.mqtt_uri(0) + "," + nats.mqtt_uri(1) + "," + nats.mqtt_uri(2);
  ChildProcess sim(fleet(brokers, "25"), sim_dir.path() / "sim.log");
  ASSERT_TRUE(wait_until([&] { return applied() > 500; }, 30s)) << sim_summary(sim.log());
  nats.kill(0);  // and it stays down
  const auto at_kill = applied();
  // The agents of node 0 (all of them) move to node 1: events keep being applied.
  EXPECT_TRUE(wait_until([&] { return applied() > at_kill + 1000; }, 60s))
      << "applied " << applied() << " since the kill at " << at_kill << "\n"
      << sim_summary(sim.log());

  ASSERT_EQ(sim.wait(kSimWait), 0) << sim_summary(sim.log());
  SimTotals t;
  ASSERT_TRUE(parse_sim(sim.log(), t));
  EXPECT_EQ(t.confirmed, t.accepted) << sim_summary(sim.log());
  EXPECT_EQ(t.rest.find("never confirmed"), std::string::npos) << sim_summary(sim.log());
  if (HasFailure())
    std::cerr << "--- aggregator:\n"
              << warnings(agg.process().log()) << "--- NATS node 1:\n"
              << nats_warnings(nats.log(1)) << "--- simulator:\n"
              << sim_summary(sim.log());
}
