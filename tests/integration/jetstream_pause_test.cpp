// Instances paused past their leases (docs/scale-out.md, "A paused holder", "One board"): a
// partition's holder and the leader are fenced when they come back, by their own clock and by
// the revision of what they would write, and change nothing the instance that took over wrote.
#include "integration/jetstream_cluster_fixture.hpp"
#include "postwatch/clock.hpp"
#include "postwatch/wire_codec.hpp"
#include "support/feed_http.hpp"
#include "support/mqtt_probe.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <csignal>

using namespace postwatch::test;
using namespace std::chrono_literals;
using nlohmann::json;

TEST_F(JetStreamCluster, AHolderPausedPastItsLeaseIsFencedAndChangesNothing) {
  auto one = instance(0, "one");
  auto two = instance(1, "two");
  ASSERT_TRUE(settles({one.get(), two.get()}, nats.partitions(), 30s));

  ChildProcess sim(fleet(nats.mqtt_uri(0), "16"), sim_dir.path() / "sim.log");
  ASSERT_TRUE(wait_until([&] { return two->get("/api/v1/cluster")["counters"]["messages_applied"] > 200; }, 30s));
  // Paused well past its lease: one takes its partitions.
  ASSERT_TRUE(pause_until_taken_over(*two, *one, false));
  two->process().signal(SIGCONT);
  // Back, two finds its leases taken: it gives its partitions up without writing anything.
  ASSERT_TRUE(wait_until([&] { return two->get("/api/v1/cluster")["counters"]["leases_lost"] > 0; }, 20s))
      << two->get("/api/v1/cluster").dump(1);

  ASSERT_NO_FATAL_FAILURE(expect_fleet_confirmed_on_one_board(sim, *one, *two));
  // Back from the pause, two applied nothing after its lease lapsed (fenced locally), and
  // any snapshot it had queued was refused by revision; the counts above are exact anyway.
  auto c2 = two->get("/api/v1/cluster")["counters"];
  EXPECT_GT(c2["fenced_messages"].get<std::uint64_t>() + c2["snapshot_conflicts"].get<std::uint64_t>(), 0u)
      << c2.dump();
  report({{"one", one.get()}, {"two", two.get()}}, &sim);
}

// The leader paused past its lease (docs/scale-out.md, "One board"): the other instance takes
// the leader key and raises an alarm the paused one never saw. Back, the old leader writes no
// board over its successor's (its own clock says its lease could have lapsed, or the board's
// revision moved on), and gives the leadership up: every image written from the successor's
// first one with the alarm on shows it. An acknowledgement taken on the follower while the
// leader is paused, before it could apply it, is served by both once the successor leads.
TEST_F(JetStreamCluster, ALeaderPausedPastItsLeaseWritesNoBoardOverItsSuccessors) {
  auto leads = [](AggregatorProcess& a) {
    auto c = a.get("/api/v1/cluster");
    return c.is_object() && c["leader"].get<bool>();
  };
  auto one = instance(0, "one");
  ASSERT_TRUE(wait_until([&] { return leads(*one); }, 30s)) << one->get("/api/v1/cluster").dump(1);
  auto two = instance(1, "two");
  ASSERT_TRUE(settles({one.get(), two.get()}, nats.partitions(), 30s));
  BoardImages written(nats, "ops");

  ChildProcess sim(fleet(nats.mqtt_uri(0), "20"), sim_dir.path() / "sim.log");
  ASSERT_TRUE(wait_until([&] { return one->get("/api/v1/cluster")["counters"]["messages_applied"] > 200; }, 30s));

  // Batches on one post's topic claiming another (the fleet sends none) raise topic_mismatch.
  MqttProbe pub(nats.mqtt_uri(1), "forger");
  auto forge = [&](const std::string& topic_post, const std::string& region, const std::string& claimed) {
    postwatch::EventBatch forged{"gw-1", claimed, postwatch::now_utc_ms(), {}};
    forged.events.push_back(
        {1, postwatch::now_utc_ms(), "terrorism_threat_level", postwatch::ValueKind::Level, 5, "", "", {}});
    for (int i = 0; i < 3; ++i)
      pub.publish("postwatch/v1/" + region + "/" + topic_post + "/evil/events", postwatch::encode_batch(forged));
  };
  auto shown_alarm = [](AggregatorProcess& a, const std::string& post) -> json {
    auto alarms = a.get("/api/v1/alarms");
    if (alarms.is_object())
      for (const auto& x : alarms["alarms"])
        if (x["kind"] == "topic_mismatch" && x["post"] == post) return x;
    return nullptr;
  };
  // Before the pause: one (the leader) raises one on kabul, and two serves it.
  forge("kabul", "asia", "bamako");
  json kabul;
  ASSERT_TRUE(wait_until([&] { return !(kabul = shown_alarm(*two, "kabul")).is_null(); }, 20s))
      << two->get("/api/v1/alarms").dump(1);
  // Acknowledged on two while one is paused and still holds the leader key: no leader can
  // apply it yet, and the next one (two) must not lose it.
  one->process().signal(SIGSTOP);
  const bool two_followed = !leads(*two);
  auto ack = http_call(two->port(), feedhttp::verb::post, "/api/v1/alarms/" + kabul["id"].dump() + "/ack",
                       {{"Content-Type", "application/json"}}, R"({"by":"duty officer","comment":"seen"})");
  ASSERT_EQ(ack.status, 200) << ack.body;
  EXPECT_TRUE(two_followed) << "two led before the ack: the hand-over was not between the ack and its application";
  ASSERT_TRUE(pause_until_taken_over(*one, *two, true));
  EXPECT_TRUE(wait_until([&] { return shown_alarm(*two, "kabul").value("acknowledged", false); }, 10s))
      << shown_alarm(*two, "kabul").dump();

  // Batches on bamako's topic claiming kabul: two, leading now, raises the alarm.
  forge("bamako", "sub-saharan-africa", "kabul");
  auto raised_in = [](const json& image) -> json {  // the alarm's id and raised_at_ms, or null
    if (image.is_object())
      for (const auto& a : image.value("alarms", json::array()))
        if (a["kind"] == "topic_mismatch" && a["post"] == "bamako") return {a["id"], a["raised_at_ms"]};
    return nullptr;
  };
  json raised;
  std::size_t first = 0;  // the first image with the alarm
  ASSERT_TRUE(wait_until(
      [&] {
        auto images = written.images();
        for (; first < images.size(); ++first)
          if (raised = raised_in(images[first]); !raised.is_null()) return true;
        return false;
      },
      20s))
      << two->get("/api/v1/alarms").dump(1);

  one->process().signal(SIGCONT);
  // Back, one finds the leader key and its partitions taken.
  ASSERT_TRUE(wait_until(
      [&] {
        auto c = one->get("/api/v1/cluster");
        return c.is_object() && !c["leader"].get<bool>() && c["counters"]["leases_lost"] > 0;
      },
      20s))
      << one->get("/api/v1/cluster").dump(1);

  ASSERT_NO_FATAL_FAILURE(expect_fleet_confirmed_on_one_board(sim, *one, *two));
  // Back, one either tried to write and was refused (by its clock, or by the revision), or its
  // lease thread saw the key taken first (seen under ASan: then nothing was tried). Either way
  // it stepped down; that it wrote nothing over the new leader's board is checked below.
  auto c1 = one->get("/api/v1/cluster")["counters"];
  const bool refused = c1["board_writes_fenced"].get<std::uint64_t>() + c1["board_conflicts"].get<std::uint64_t>() > 0;
  const bool saw_key_taken = one->process().log().find("no longer publishes the goal feed") != std::string::npos;
  EXPECT_TRUE(refused || saw_key_taken) << c1.dump();
  // Nothing written over the new leader's board: every image from its first with the alarm on
  // has it (the paused one's board never had it).
  auto images = written.images();
  auto over = std::find_if(images.begin() + static_cast<std::ptrdiff_t>(first), images.end(),
                           [&](const json& image) { return raised_in(image) != raised; });
  EXPECT_TRUE(over == images.end()) << "board image " << over - images.begin() << " of " << images.size()
                                    << " (the alarm came in " << first << ") has not got it:\n"
                                    << (over == images.end() ? "" : over->dump().substr(0, 3000));
  for (auto* a : {one.get(), two.get()}) {
    auto alarms = a->get("/api/v1/alarms");
    json shown;
    if (alarms.is_object())
      for (const auto& x : alarms["alarms"])
        if (x["kind"] == "topic_mismatch" && x["post"] == "bamako") shown = {x["id"], x["raised_at_ms"]};
    EXPECT_EQ(shown, raised) << "on port " << a->port() << ": " << alarms.dump().substr(0, 3000);
    EXPECT_TRUE(shown_alarm(*a, "kabul").value("acknowledged", false)) << "on port " << a->port();
  }
  report({{"one", one.get()}, {"two", two.get()}}, &sim);
}
