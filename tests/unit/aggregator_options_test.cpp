// The aggregator's options are checked in one place (options_problem): the defaults pass, and
// each bad value is refused with a message that names its option, zeros included where a zero
// would stall the service (no queued message, no store backlog, no lease, no replica).
#include "postwatch/aggregator/aggregator_options.hpp"

#include <gtest/gtest.h>

#include <functional>
#include <string>

using namespace postwatch::aggregator;

namespace {

struct BadValue {
  const char* option;  // what the message must name
  std::function<void(AggregatorOptions&)> set;
};

AggregatorOptions clustered() {
  AggregatorOptions o;
  o.cluster_group = "ops";
  o.nats_servers = "nats://127.0.0.1:4222";
  return o;
}

}  // namespace

TEST(AggregatorOptionsCheck, TheDefaultsAndAClusteredInstancePass) {
  EXPECT_EQ(options_problem(AggregatorOptions{}), "");
  EXPECT_EQ(options_problem(clustered()), "");
}

TEST(AggregatorOptionsCheck, EachBadValueIsRefusedNamingItsOption) {
  const BadValue bad[] = {
      {"--tick-ms", [](auto& o) { o.tick_ms = 5; }},
      {"--confirm-interval-ms", [](auto& o) { o.confirm_interval_ms = -1; }},
      {"--min-coverage", [](auto& o) { o.min_coverage = 1.5; }},
      {"--hysteresis", [](auto& o) { o.hysteresis_band = -0.1; }},
      {"--missed-heartbeats", [](auto& o) { o.missed_heartbeats = 0; }},
      {"--stream-max-queue", [](auto& o) { o.stream_max_queue = 0; }},
      {"--outbound-window", [](auto& o) { o.outbound_window = 0; }},
      {"--max-queued-messages", [](auto& o) { o.max_queued_messages = 0; }},
      {"--max-store-backlog", [](auto& o) { o.max_store_backlog_events = 0; }},
      {"--broker", [](auto& o) { o.broker_uri = "http://127.0.0.1:1883"; }},
      {"--broker-cert and --broker-key",
       [](auto& o) {
         o.broker_uri = "ssl://127.0.0.1:8883";
         o.broker_cert_file = "agent.crt";
       }},
      {"--tls-cert and --tls-key", [](auto& o) { o.tls_cert_file = "feed.crt"; }},
  };
  for (const auto& b : bad) {
    AggregatorOptions o;
    b.set(o);
    const auto why = options_problem(o);
    EXPECT_NE(why.find(b.option), std::string::npos) << b.option << ": got '" << why << "'";
  }
}

TEST(AggregatorOptionsCheck, AClusterRefusesZerosThatWouldStallItAndNeedsNats) {
  const BadValue bad[] = {
      {"--nats-replicas", [](auto& o) { o.nats_replicas = 0; }},
      {"--lease-ms", [](auto& o) { o.lease_ms = 0; }},
      {"--snapshot-interval-ms", [](auto& o) { o.snapshot_interval_ms = 0; }},
      {"--nats-partitions", [](auto& o) { o.nats_partitions = 0; }},
      {"--nats-partitions", [](auto& o) { o.nats_partitions = 1025; }},
      {"--cluster-group needs --nats", [](auto& o) { o.nats_servers.clear(); }},
      {"--instance-id", [](auto& o) { o.instance_id = "a.b"; }},
  };
  for (const auto& b : bad) {
    auto o = clustered();
    b.set(o);
    const auto why = options_problem(o);
    EXPECT_NE(why.find(b.option), std::string::npos) << b.option << ": got '" << why << "'";
  }
  // Outside a cluster, the cluster's options are not read at all.
  AggregatorOptions single;
  single.lease_ms = 0;
  single.nats_replicas = 0;
  EXPECT_EQ(options_problem(single), "");
}
