// Scale-out building blocks without a broker: which instance holds which event partition,
// which partition a post is on, and the per-post snapshot one holder hands to the next
// (docs/scale-out.md).
#include "cluster/nats_link.hpp"
#include "cluster/partition_rendezvous.hpp"
#include "cluster/post_partial.hpp"
#include "ingest/batch_ingest.hpp"
#include "postwatch/event_partitions.hpp"
#include "postwatch/wire_codec.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <map>

using namespace postwatch;
using namespace postwatch::aggregator;

namespace {

std::shared_ptr<spdlog::logger> quiet() {
  return std::make_shared<spdlog::logger>("test", std::make_shared<spdlog::sinks::null_sink_mt>());
}

// partition -> the member that wins it.
std::map<std::uint32_t, std::string> winners(const std::vector<std::string>& members, std::uint32_t count) {
  std::map<std::uint32_t, std::string> out;
  for (const auto& m : members)
    for (auto p : partitions_won(members, m, count)) {
      EXPECT_FALSE(out.count(p)) << "partition " << p << " won twice";
      out[p] = m;
    }
  return out;
}

}  // namespace

TEST(PartitionRendezvous, EveryPartitionHasOneWinnerWhateverOrderTheMembersAreListedIn) {
  auto a = winners({"agg-1", "agg-2", "agg-3"}, 16);
  auto b = winners({"agg-3", "agg-1", "agg-2"}, 16);
  EXPECT_EQ(a.size(), 16u);
  EXPECT_EQ(a, b);
}

TEST(PartitionRendezvous, PartitionsSpreadOverTheMembers) {
  std::map<std::string, int> per;
  for (const auto& [p, m] : winners({"agg-1", "agg-2", "agg-3"}, 64)) per[m] += 1;
  ASSERT_EQ(per.size(), 3u);
  for (const auto& [m, n] : per) EXPECT_GT(n, 10) << m;  // 64/3 each, give or take
}

TEST(PartitionRendezvous, AJoinMovesOnlyThePartitionsTheNewcomerWinsAndALeaveOnlyItsOwn) {
  auto two = winners({"agg-1", "agg-2"}, 32);
  auto three = winners({"agg-1", "agg-2", "agg-3"}, 32);
  int moved = 0;
  for (const auto& [p, m] : three) {
    if (m == "agg-3")
      ++moved;
    else
      EXPECT_EQ(two.at(p), m) << "partition " << p << " moved between the members that stayed";
  }
  EXPECT_GT(moved, 0);
  // agg-3 leaving again gives exactly its partitions back.
  EXPECT_EQ(winners({"agg-1", "agg-2"}, 32), two);
}

TEST(EventPartitions, ThePartitionOfAPostIsTheOneNatsMapsItTo) {
  // nats-server 2.9.10 put postwatch/v1/africa/bamako/board-1/events on partition 8 of 16
  // ({{partition(16,2)}}: FNV-1a of the post token); every agent of a post shares it.
  EXPECT_EQ(partitions::partition_of("bamako", 16), 8u);
  EXPECT_EQ(partitions::partition_of("bamako", 1), 0u);
  EXPECT_EQ(partitions::mapping_destination(16),
            "postwatch-events.{{partition(16,2)}}.{{wildcard(1)}}.{{wildcard(2)}}.{{wildcard(3)}}");
  EXPECT_EQ(partitions::partition_subjects(8), "postwatch-events.8.>");
}

TEST(EventPartitions, APartitionSubjectGivesBackTheAgentsTopic) {
  std::string topic;
  ASSERT_TRUE(partitions::events_topic("postwatch-events.8.africa.bamako.board-1", topic));
  EXPECT_EQ(topic, "postwatch/v1/africa/bamako/board-1/events");
  for (const char* bad : {"postwatch-events.8.africa.bamako", "postwatch-events.8.africa.bamako.board-1.x",
                          "postwatch-events.8..bamako.board-1", "other.8.africa.bamako.board-1", ""})
    EXPECT_FALSE(partitions::events_topic(bad, topic)) << bad;
}

class PostPartialTest : public ::testing::Test {
 protected:
  IndicatorCatalogue cat = IndicatorCatalogue::load(test::catalogue_path());
  const std::string topic = "postwatch/v1/sub-saharan-africa/bamako/a1/events";
  std::uint32_t post = *cat.post_index("bamako");

  struct Instance {
    IndicatorState state;
    AgentTable agents;
    BatchIngest ingest;
    explicit Instance(const IndicatorCatalogue& c) : state(c), agents(c), ingest(c, agents, state, quiet()) {}
  };

  static EventBatch batch(std::initializer_list<std::uint64_t> seqs) {
    EventBatch b{"a1", "bamako", 0, {}};
    for (auto s : seqs) {
      auto at = 1'000'000 + static_cast<std::int64_t>(s) * 1000;
      b.events.push_back({s, at, "cyber_incidents", ValueKind::Count, 2, "", "", {}});
      b.events.push_back(
          {s + 1000, at, "terrorism_threat_level", ValueKind::Level, static_cast<double>(s % 5 + 1), "", "", {}});
      b.events.push_back({s + 2000, at, "situation_note", ValueKind::Text, 0, "note " + std::to_string(s), "", {}});
    }
    return b;
  }
  static std::size_t feed(Instance& i, const std::string& t, const EventBatch& b) {
    auto bytes = encode_batch(b);
    return i.ingest.on_message(t, bytes, 1'100'000);
  }
  PostPartial partial_of(const Instance& i) {
    PostPartial p;
    p.post = "bamako";
    p.owner = "agg-1";
    p.incarnation = "x";
    p.rows = i.state.export_post(post);
    p.agents = i.ingest.export_agents(post);
    return p;
  }
};

TEST_F(PostPartialTest, TheNextOwnerContinuesExactlyWhereThePartialEnds) {
  Instance a(cat), b(cat);
  feed(a, topic, batch({1, 2, 3, 5}));  // 4 is still on its way
  PostPartial sent = partial_of(a);
  PostPartial got;
  ASSERT_EQ(decode_partial(encode_partial(sent, cat), cat, got), "");
  EXPECT_EQ(got.highest_seq("a1"), 2005u);
  b.state.import_post(post, got.rows);
  b.ingest.import_agents(post, got.agents);

  for (std::uint32_t i = 0; i < cat.indicators().size(); ++i) {
    EXPECT_EQ(b.state.at(post, i).present, a.state.at(post, i).present) << cat.indicators()[i].id;
    EXPECT_EQ(b.state.value(post, i, 1'100'000), a.state.value(post, i, 1'100'000)) << cat.indicators()[i].id;
    EXPECT_EQ(b.state.text_at(post, i), a.state.text_at(post, i));
  }
  // The same messages again (a backup's buffer overlapping the partial) change nothing;
  // the seq that was still missing and the new ones count once, on both.
  auto more = batch({3, 4, 5, 6});
  EXPECT_EQ(feed(b, topic, more), feed(a, topic, more));
  auto cyber = *cat.indicator_index("cyber_incidents");
  EXPECT_EQ(b.state.value(post, cyber, 1'100'000), 2.0 * 6);
  EXPECT_EQ(b.state.value(post, cyber, 1'100'000), a.state.value(post, cyber, 1'100'000));
  EXPECT_EQ(b.agents.find("bamako/a1")->events.events, a.agents.find("bamako/a1")->events.events);
}

TEST_F(PostPartialTest, ImportReplacesWhatTheInstanceHeldForThePost) {
  Instance a(cat), b(cat);
  feed(b, topic, batch({1, 2, 3, 4, 5, 6, 7, 8}));  // b's own stale view of the post
  feed(a, topic, batch({1, 2}));
  PostPartial got;
  ASSERT_EQ(decode_partial(encode_partial(partial_of(a), cat), cat, got), "");
  b.state.import_post(post, got.rows);
  b.ingest.import_agents(post, got.agents);
  auto cyber = *cat.indicator_index("cyber_incidents");
  EXPECT_EQ(b.state.value(post, cyber, 1'100'000), 4.0);
  // Its own events, replayed through the imported window, count again exactly once.
  EXPECT_EQ(feed(b, topic, batch({1, 2, 3, 4, 5, 6, 7, 8})), 18u);
  EXPECT_EQ(b.state.value(post, cyber, 1'100'000), 16.0);
}

TEST_F(PostPartialTest, BadPartialsAreRefusedWithAReason) {
  PostPartial out;
  EXPECT_EQ(decode_partial("not json", cat, out), "not a JSON object");
  EXPECT_NE(decode_partial(R"({"format":99})", cat, out).find("format 99"), std::string::npos);
  EXPECT_NE(decode_partial(R"({"format":1})", cat, out).find("format 1, this build reads 2"), std::string::npos);
  EXPECT_NE(decode_partial(R"({"format":2,"post":"bamako"})", cat, out).find("malformed partial"), std::string::npos);
  Instance a(cat);
  auto p = partial_of(a);
  p.post = "atlantis";
  EXPECT_EQ(decode_partial(encode_partial(p, cat), cat, out), "unknown post 'atlantis'");
}

// When a key-value watch counts as behind its bucket (docs/scale-out.md, "NATS 2.9 limits"):
// only once a revision the bucket held stays unshown for the whole limit.
TEST(WatchLag, ABucketRevisionUnshownForTheLimitMakesTheWatchStale) {
  using namespace std::chrono_literals;
  WatchLag lag;
  const WatchLag::Time t0{};
  EXPECT_FALSE(lag.stale(10, 10, t0, 2s));       // caught up
  EXPECT_FALSE(lag.stale(12, 10, t0 + 1s, 2s));  // behind: 12 missing from now on
  EXPECT_FALSE(lag.stale(13, 11, t0 + 2s, 2s));  // moving, still short of 12
  EXPECT_TRUE(lag.stale(14, 11, t0 + 3s, 2s));   // 12 unshown for 2 s
  lag.reset();                                   // watched again: the new watch gets its own limit
  EXPECT_FALSE(lag.stale(14, 11, t0 + 3s, 2s));
  EXPECT_FALSE(lag.stale(15, 14, t0 + 4s, 2s));  // 14 shown: now 15 is the one missing, since 4 s
  EXPECT_FALSE(lag.stale(16, 14, t0 + 5900ms, 2s));
  EXPECT_TRUE(lag.stale(16, 14, t0 + 6s, 2s));
  EXPECT_FALSE(lag.stale(16, 16, t0 + 7s, 2s));    // caught up: nothing missing
  EXPECT_FALSE(lag.stale(17, 16, t0 + 100s, 2s));  // a new write: its own limit from now
}
