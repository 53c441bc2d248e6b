// Scale-out building blocks without a broker: who owns which post, and the per-post
// partial that one instance hands to another (docs/scale-out.md).
#include "cluster/partition_map.hpp"
#include "cluster/post_partial.hpp"
#include "ingest/batch_ingest.hpp"
#include "postwatch/wire_codec.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <map>

using namespace postwatch;
using namespace postwatch::aggregator;

namespace {

std::vector<ClusterMemberInfo> members(std::initializer_list<const char*> names) {
  std::vector<ClusterMemberInfo> out;
  for (const char* n : names) out.push_back({n, std::string(n) + "-inc", "", 0});
  return out;
}

std::shared_ptr<spdlog::logger> quiet() {
  return std::make_shared<spdlog::logger>("test", std::make_shared<spdlog::sinks::null_sink_mt>());
}

}  // namespace

class PartitionMapTest : public ::testing::Test {
 protected:
  IndicatorCatalogue cat = IndicatorCatalogue::load(test::catalogue_path());
  std::map<std::string, std::string> owners(const PartitionMap& m) {
    std::map<std::string, std::string> out;
    for (const auto& p : cat.posts()) out[p.id] = m.owner(p.id)->instance;
    return out;
  }
};

TEST_F(PartitionMapTest, EveryMemberComputesTheSameOwnersWhateverOrderItHeardOfTheOthers) {
  PartitionMap a(members({"agg-1", "agg-2", "agg-3"})), b(members({"agg-3", "agg-1", "agg-2"}));
  EXPECT_EQ(a.view(), b.view());
  EXPECT_EQ(owners(a), owners(b));
  EXPECT_EQ(a.leader()->instance, "agg-1");
  for (const auto& p : cat.posts()) EXPECT_NE(a.owner(p.id)->instance, a.backup(p.id)->instance) << p.id;
}

TEST_F(PartitionMapTest, PostsSpreadOverTheMembers) {
  PartitionMap m(members({"agg-1", "agg-2", "agg-3"}));
  std::map<std::string, std::size_t> load;
  for (const auto& [post, owner] : owners(m)) load[owner] += 1;
  ASSERT_EQ(load.size(), 3u);
  for (const auto& [owner, n] : load) {
    EXPECT_GT(n, cat.posts().size() / 5) << owner;  // a fair share is a third
    EXPECT_LT(n, cat.posts().size() / 2) << owner;
  }
}

TEST_F(PartitionMapTest, AJoinMovesOnlyThePostsTheNewcomerWins) {
  auto before = owners(PartitionMap(members({"agg-1", "agg-2", "agg-3"})));
  auto after = owners(PartitionMap(members({"agg-1", "agg-2", "agg-3", "agg-4"})));
  std::size_t moved = 0;
  for (const auto& [post, owner] : after)
    if (owner != before[post]) {
      EXPECT_EQ(owner, "agg-4") << post;
      ++moved;
    }
  EXPECT_GT(moved, 0u);
}

TEST_F(PartitionMapTest, ALeavingMembersPostsGoToTheirBackups) {
  PartitionMap three(members({"agg-1", "agg-2", "agg-3"}));
  PartitionMap two(members({"agg-1", "agg-3"}));
  EXPECT_NE(three.view(), two.view());
  for (const auto& p : cat.posts()) {
    if (three.owner(p.id)->instance == "agg-2")
      EXPECT_EQ(two.owner(p.id)->instance, three.backup(p.id)->instance) << p.id;
    else
      EXPECT_EQ(two.owner(p.id)->instance, three.owner(p.id)->instance) << p.id;
  }
}

TEST_F(PartitionMapTest, ARestartedMemberIsANewView) {
  auto m = members({"agg-1", "agg-2"});
  PartitionMap before(m);
  m[1].incarnation = "new";
  EXPECT_NE(PartitionMap(m).view(), before.view());
  auto ready = members({"agg-1", "agg-2"});
  ready[1].ready_view = "whatever";  // readiness is not membership
  EXPECT_EQ(PartitionMap(ready).view(), PartitionMap(members({"agg-1", "agg-2"})).view());
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
    p.version = 7;
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
  EXPECT_EQ(got.version, 7u);
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
  EXPECT_NE(decode_partial(R"({"format":1,"post":"bamako"})", cat, out).find("malformed partial"), std::string::npos);
  Instance a(cat);
  auto p = partial_of(a);
  p.post = "atlantis";
  EXPECT_EQ(decode_partial(encode_partial(p, cat), cat, out), "unknown post 'atlantis'");
}
