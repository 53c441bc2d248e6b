// The board of a clustered instance (aggregator/src/cluster/clustered_board.hpp): a follower
// shows the leader's image, a new leader starts from it, and an acknowledgement taken on any
// instance survives a change of leader.
#include "cluster/clustered_board.hpp"
#include "rollup/board_image.hpp"
#include "rollup/goal_rollup.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

using namespace postwatch;
using namespace postwatch::aggregator;

namespace {

constexpr std::int64_t kT0 = 1'800'000'000'000;
const IndicatorCatalogue& catalogue() { return test::shipped_catalogue(); }

// One instance of the cluster: its own roll-up of what it applied, its board, and the
// clustered board that decides what the board shows.
struct Instance {
  IndicatorState state{catalogue()};
  GoalRollup rollup{catalogue(), RollupPolicy{0.0, 0.5}};
  StatusBoard board{catalogue(), BoardPolicy{0}};
  ClusteredBoard clustered{catalogue(),
                           std::make_shared<spdlog::logger>("q", std::make_shared<spdlog::sinks::null_sink_mt>())};

  void set_level(double v, std::int64_t at) {
    EventView e;
    e.observed_at_ms = at;
    e.number = v;
    state.apply(*catalogue().post_index("bamako"), *catalogue().indicator_index("terrorism_threat_level"), e, at);
  }
  ClusteredBoard::Outcome tick(ClusteredBoard::Shared shared, std::int64_t at) {
    return clustered.tick(board, rollup.compute(state, at, {}, board.last().cells), {}, std::move(shared), at);
  }
};

ClusteredBoard::Shared leading() { return {true, {}, {}, std::nullopt}; }
ClusteredBoard::Shared following(std::optional<std::string> image, std::vector<JetStreamCluster::SharedAck> acks = {}) {
  return {false, std::move(acks), {}, std::move(image)};
}

}  // namespace

TEST(ClusteredBoard, AFollowerShowsTheLeadersImageAndANewLeaderStartsFromIt) {
  Instance a, b;
  a.set_level(4, kT0);  // red: goal 7's alarm, on the leader
  auto led = a.tick(leading(), kT0);
  ASSERT_TRUE(led.image) << "a leader shares its image when something changed";
  ASSERT_EQ(a.board.alarms().size(), 1u);
  const auto alarm = a.board.alarms()[0];

  b.tick(following(led.image), kT0);
  ASSERT_EQ(b.board.alarms().size(), 1u);
  EXPECT_EQ(b.board.alarms()[0].id, alarm.id);
  EXPECT_EQ(b.board.alarms()[0].raised_at_ms, alarm.raised_at_ms);
  EXPECT_EQ(b.tick(following(std::nullopt), kT0 + 100).image, std::nullopt) << "a follower shares nothing";

  // b leads: the alarm goes on with its id.
  b.set_level(4, kT0 + 200);
  auto now_leading = b.tick(leading(), kT0 + 200);
  ASSERT_EQ(b.board.alarms().size(), 1u) << "the same alarm, not a second one";
  EXPECT_EQ(b.board.alarms()[0].id, alarm.id);
  EXPECT_TRUE(b.board.alarms()[0].open());
  EXPECT_TRUE(now_leading.image) << "a new leader shares its image at once";
  EXPECT_EQ(b.tick(leading(), kT0 + 500).image, std::nullopt) << "nothing changed and a second has not passed";
  EXPECT_TRUE(b.tick(leading(), kT0 + 1300).image) << "the leader shares its image every second";
}

// The window the held acknowledgements close: an acknowledgement taken on follower b after
// the leader's last image, which the leader never applied (it paused or died). b is the next
// leader and starts from that image, which does not hold the acknowledgement.
TEST(ClusteredBoard, AnAcknowledgementTheOldLeaderNeverAppliedIsAppliedByTheNextLeader) {
  Instance a, b;
  a.set_level(4, kT0);
  auto led = a.tick(leading(), kT0);
  ASSERT_EQ(a.board.alarms().size(), 1u);
  const auto id = a.board.alarms()[0].id;

  b.tick(following(led.image), kT0);
  JetStreamCluster::SharedAck ack{id, "desk b", "on it", kT0 + 500};
  b.tick(following(std::nullopt, {ack}), kT0 + 500);
  // The old leader's last image, written before it could apply the acknowledgement.
  auto last = a.tick(leading(), kT0 + 1500);
  ASSERT_TRUE(last.image);
  b.tick(following(last.image), kT0 + 1600);
  ASSERT_EQ(b.board.alarms().size(), 1u);
  EXPECT_EQ(b.board.alarms()[0].acked_at_ms, 0) << "the leader's image does not hold it yet";

  b.set_level(4, kT0 + 2000);
  auto took_over = b.tick(leading(), kT0 + 2000);
  ASSERT_EQ(b.board.alarms().size(), 1u);
  const Alarm& after = b.board.alarms()[0];
  EXPECT_EQ(after.acked_at_ms, kT0 + 500);
  EXPECT_EQ(after.acked_by, "desk b");
  EXPECT_EQ(after.ack_comment, "on it");
  ASSERT_TRUE(took_over.image) << "the acknowledgement is a change: shared at once";
  BoardImage shared;
  ASSERT_EQ(decode_board_image(*took_over.image, catalogue(), shared), "");
  ASSERT_EQ(shared.alarms.size(), 1u);
  EXPECT_EQ(shared.alarms[0].acked_at_ms, kT0 + 500);
}

// An acknowledgement that reaches the leader twice (its own, then the shared copy) changes
// the board once.
TEST(ClusteredBoard, AnAcknowledgementAppliedTwiceChangesTheBoardOnce) {
  Instance a;
  a.set_level(4, kT0);
  a.tick(leading(), kT0);
  ASSERT_EQ(a.board.alarms().size(), 1u);
  const auto id = a.board.alarms()[0].id;
  JetStreamCluster::SharedAck ack{id, "desk a", "", kT0 + 100};
  ClusteredBoard::Shared with_ack = leading();
  with_ack.acks = {ack};
  auto first = a.tick(with_ack, kT0 + 100);
  EXPECT_EQ(first.changes.alarms, std::vector<std::uint64_t>{id});
  JetStreamCluster::SharedAck later{id, "desk c", "", kT0 + 200};
  with_ack.acks = {later};
  auto second = a.tick(with_ack, kT0 + 200);
  EXPECT_TRUE(second.changes.alarms.empty());
  EXPECT_EQ(a.board.alarms()[0].acked_by, "desk a");
}
