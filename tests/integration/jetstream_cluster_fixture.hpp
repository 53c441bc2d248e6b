// The JetStream cluster tests' fixture (a 3-node NATS cluster, data dirs for three instances
// and the simulator) and the steps several of them share. Not in an anonymous namespace: the
// tests of one suite in several files must share one fixture class.
#pragma once

#include "integration/jetstream_fleet_support.hpp"
#include "integration/jetstream_test_support.hpp"
#include "postwatch/catalogue.hpp"
#include "postwatch/clock.hpp"
#include "store/event_store.hpp"
#include "support/aggregator_process.hpp"
#include "support/nats_cluster.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <csignal>
#include <iostream>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <vector>

namespace postwatch::test {

// Each accepted event once across the union of the instances' stores, and how many rows
// are there twice (a killed holder's events it stored but had not acknowledged).
struct StoreUnion {
  std::uint64_t distinct = 0, rows = 0;
};
inline StoreUnion store_union(const std::vector<const TempDir*>& dirs) {
  static const auto catalogue = postwatch::IndicatorCatalogue::load(catalogue_path());
  auto quiet = spdlog::null_logger_mt("store-union-" + std::to_string(dirs.size()) + "-" + std::to_string(::getpid()) +
                                      "-" + std::to_string(postwatch::now_utc_ms()));
  std::set<std::tuple<std::string, std::string, std::uint64_t>> distinct;
  StoreUnion u;
  for (const auto* dir : dirs) {
    postwatch::aggregator::EventStore store({dir->path() / "aggregator-data" / "postwatch.sqlite"}, catalogue, quiet);
    u.rows +=
        store.replay([&](const postwatch::aggregator::StoredEventRow& r) { distinct.emplace(r.post, r.agent, r.seq); });
  }
  u.distinct = distinct.size();
  return u;
}

class JetStreamCluster : public ::testing::Test {
 protected:
  void report(const std::vector<std::pair<std::string, AggregatorProcess*>>& aggs, ChildProcess* sim = nullptr) {
    if (!HasFailure()) return;
    for (auto& [name, a] : aggs) {
      auto log = a->process().log();
      std::cerr << "--- " << name << (a->process().running() ? "" : " (exited)") << ":\n"
                << warnings(log) << "... last lines:\n"
                << log.substr(log.size() > 12000 ? log.size() - 12000 : 0);
    }
    for (int i = 0; i < nats.size(); ++i) std::cerr << "--- NATS node " << i << ":\n" << nats_warnings(nats.log(i));
    if (sim) std::cerr << "--- simulator:\n" << sim_summary(sim->log());
  }
  // `paused` is stopped (SIGSTOP: a long GC, a frozen VM) until `other` holds every partition,
  // and with `and_leads` the leader key too.
  ::testing::AssertionResult pause_until_taken_over(AggregatorProcess& paused, AggregatorProcess& other,
                                                    bool and_leads) {
    paused.process().signal(SIGSTOP);
    nlohmann::json c;
    if (wait_until(
            [&] {
              c = other.get("/api/v1/cluster");
              return c.is_object() && c["partitions"]["held"].size() == nats.partitions() &&
                     (!and_leads || c["leader"].get<bool>());
            },
            std::chrono::seconds(60)))
      return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "not taken over:\n" << c.dump(1);
  }
  // The fleet ends with every accepted event confirmed, and both instances serve one board
  // holding every one of them.
  void expect_fleet_confirmed_on_one_board(ChildProcess& sim, AggregatorProcess& a, AggregatorProcess& b) {
    ASSERT_EQ(sim.wait(kSimWait), 0) << sim_summary(sim.log());
    SimTotals t;
    ASSERT_TRUE(parse_sim(sim.log(), t));
    EXPECT_EQ(t.confirmed, t.accepted) << sim_summary(sim.log());
    ASSERT_TRUE(settles({&a, &b}, nats.partitions(), std::chrono::seconds(20)));
    nlohmann::json ba, bb;
    EXPECT_TRUE(wait_until(
        [&] {
          ba = board(a), bb = board(b);
          return ba == bb && events_received(ba) == t.accepted;
        },
        std::chrono::seconds(20), std::chrono::milliseconds(200)))
        << "events on a's board: " << events_received(ba) << ", on b's: " << events_received(bb)
        << ", accepted: " << t.accepted;
  }
  // Instance `name` on node `node`'s MQTT listener, with that node's data dir.
  std::unique_ptr<AggregatorProcess> instance(int node, const std::string& name) {
    const TempDir* dirs[] = {&dir1, &dir2, &dir3};
    return std::make_unique<AggregatorProcess>(nats.mqtt_uri(node), *dirs[node], cluster_args(nats, name), name);
  }
  NatsCluster nats{3};
  TempDir dir1, dir2, dir3, sim_dir;
};

}  // namespace postwatch::test
