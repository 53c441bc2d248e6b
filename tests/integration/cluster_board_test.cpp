// One board, whichever way it is served (docs/scale-out.md, "One board"): the same events,
// for every post, published to a single instance on Mosquitto and to three instances on a 3-node NATS cluster,
// give every cluster instance the board of the single instance: each goal's raw status, score
// and shown status, each agent's count and highest seq; and the strategy targets the ministry's
// figures make (they reach one instance's partition, and every instance serves them). The
// cluster's leader is SIGKILLed between the two rounds: the survivors still serve that board.
#include "integration/jetstream_test_support.hpp"
#include "postwatch/catalogue.hpp"
#include "postwatch/clock.hpp"
#include "support/aggregator_process.hpp"
#include "support/feed_http.hpp"
#include "support/mqtt_probe.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <set>

using namespace postwatch;
using namespace postwatch::test;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

// The board plus each goal's shown status (debounced: the cluster's comes from its leader).
json board_and_shown(AggregatorProcess& agg) {
  json b = board(agg);
  auto goals = agg.get("/api/v1/goals");
  if (b.is_null() || !goals.is_object()) return nullptr;
  for (const auto& g : goals["goals"]) b["shown"][std::to_string(g["id"].get<int>())] = g["status"];
  return b;
}

// Each figure target's status and readings, as GET /api/v1/targets gives them on 2021-01-01.
json figure_targets(AggregatorProcess& agg) {
  auto t = agg.get("/api/v1/targets?at=2021-01-01");
  if (!t.is_object()) return nullptr;
  json out = json::object();
  for (const auto& x : t["targets"])
    if (x["kind"] != "milestone") out[x["id"].get<std::string>()] = {x["status"], x["readings"]};
  return out;
}

}  // namespace

TEST(ClusterBoard, TheClusterServesWhatASingleInstanceServesForTheSameEvents) {
  MosquittoBroker mosquitto;
  TempDir single_dir, dir1, dir2, dir3;
  NatsCluster nats{3};
  const std::vector<std::string> quick = {"--min-duration-s", "1"};
  AggregatorProcess single(mosquitto, single_dir, quick, "single");
  auto args = [&](const std::string& name) {
    auto a = cluster_args(nats, name);
    a.insert(a.end(), quick.begin(), quick.end());
    return a;
  };
  AggregatorProcess one(nats.mqtt_uri(0), dir1, args("one"), "one", 60s);
  AggregatorProcess two(nats.mqtt_uri(1), dir2, args("two"), "two", 60s);
  AggregatorProcess three(nats.mqtt_uri(2), dir3, args("three"), "three", 60s);
  const std::vector<AggregatorProcess*> cluster = {&one, &two, &three};
  ASSERT_TRUE(settles(cluster, nats.partitions(), 60s));

  // Every post, three level indicators each, in two rounds: terrorism reaches red at a few
  // posts (goal 7 red), military build-up amber at some (goal 5 amber), conflict warnings stay
  // low, and values vary by post so the scores do. The same sequence to both.
  const auto catalogue = IndicatorCatalogue::load(catalogue_path());
  MqttProbe to_single(mosquitto.uri(), "board-single"), to_cluster(nats.mqtt_uri(0), "board-cluster");
  std::uint64_t published = 0;
  std::vector<AggregatorProcess*> survivors;
  for (int round = 0; round < 2; ++round) {
    if (round == 1) {
      // Mid-stream, the leader dies: its partitions and the board pass to the others.
      AggregatorProcess* leader = nullptr;
      ASSERT_TRUE(wait_until(
          [&] {
            for (auto* a : cluster)
              if (a->get("/api/v1/cluster").value("leader", false)) leader = a;
            return leader != nullptr;
          },
          20s))
          << "no instance says it leads";
      leader->process().signal(SIGKILL);
      for (auto* a : cluster)
        if (a != leader) survivors.push_back(a);
    }
    for (std::size_t p = 0; p < catalogue.posts().size(); ++p) {
      const auto& post = catalogue.posts()[p];
      const int k = static_cast<int>(p) + round * 5;
      for (auto [indicator, value] : {std::pair{"terrorism_threat_level", k % 23 == 0 ? 4 : 1 + k % 2},
                                      std::pair{"military_buildup_level", k % 9 == 0 ? 3 : 1 + k % 2},
                                      std::pair{"conflict_early_warning_level", 1 + k % 2}}) {
        to_single.publish_event(post.region, post.id, indicator, value);
        to_cluster.publish_event(post.region, post.id, indicator, value);
        ++published;
      }
    }
  }

  // The ministry's figures: two years of defence spending and licences decided in time.
  EventBatch figures{"ministry", "the-hague", now_utc_ms(), {}};
  const std::int64_t y2019 = 1546300800000, year = 31536000000;  // 2019-01-01; 365 days
  for (std::uint64_t k = 0; k < 3; ++k) {
    const auto at = y2019 + static_cast<std::int64_t>(k) * year;
    figures.events.push_back(
        {3 * k + 1, at, "defence_spending_gdp_percent", ValueKind::Gauge, 1.2 + 0.1 * k, "", "", {}});
    figures.events.push_back({3 * k + 2, at, "arms_export_licences_decided", ValueKind::Count, 100, "", "", {}});
    figures.events.push_back(
        {3 * k + 3, at, "arms_export_licences_in_time", ValueKind::Count, 95.0 - 4 * k, "", "", {}});
  }
  to_single.publish("postwatch/v1/europe/the-hague/ministry/events", encode_batch(figures));
  to_cluster.publish("postwatch/v1/europe/the-hague/ministry/events", encode_batch(figures));
  published += figures.events.size();

  json expected, seen;
  ASSERT_TRUE(wait_until(
      [&] {
        expected = board_and_shown(single);
        return events_received(expected) == published;
      },
      20s))
      << events_received(expected) << " of " << published;
  // The debounced status settles after --min-duration-s on both sides: wait for it to.
  std::string differs;
  EXPECT_TRUE(wait_until(
      [&] {
        expected = board_and_shown(single);
        for (auto* a : survivors) {
          seen = board_and_shown(*a);
          if (seen != expected) {
            differs = json::diff(expected, seen).dump();
            return false;
          }
        }
        return true;
      },
      30s, 250ms))
      << "differences from the single instance (JSON patch): " << differs;
  // Something to agree on: the colours the events make (goal 7 red from terrorism, goal 5 amber
  // from military build-up, green elsewhere), not a board of unknowns.
  EXPECT_EQ(expected["goals"]["7"][0], "red") << expected["goals"].dump();
  EXPECT_EQ(expected["goals"]["5"][0], "amber") << expected["goals"].dump();
  std::set<std::string> colours;
  for (const auto& [id, g] : expected["goals"].items()) colours.insert(g[0].get<std::string>());
  EXPECT_TRUE(colours.count("green")) << expected["goals"].dump();

  // Every instance serves the targets the single instance does, whichever holds the ministry.
  json targets = figure_targets(single);
  ASSERT_TRUE(targets.is_object());
  EXPECT_EQ(targets["arms_export_decided_in_time"][0], "moving_away") << targets.dump();
  EXPECT_EQ(targets["defence_spending_2_percent"][1].size(), 3u) << targets.dump();
  for (auto* a : survivors) {
    EXPECT_TRUE(wait_until([&] { return figure_targets(*a) == targets; }, 10s))
        << "instance on port " << a->port() << ": " << figure_targets(*a).dump() << "\nsingle: " << targets.dump();
  }
}
