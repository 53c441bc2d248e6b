// DeliveryConfirmer without a broker: what it publishes, when, and what it asks agents for.
#include "ingest/delivery_confirmer.hpp"

#include "ingest/agent_presence.hpp"
#include "ingest/batch_ingest.hpp"
#include "postwatch/wire_codec.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

using namespace postwatch;
using namespace postwatch::aggregator;

namespace {

struct Published {
  std::string topic;
  DeliveryConfirm confirm;
  bool retained = false;
};

class DeliveryConfirmerTest : public ::testing::Test {
 protected:
  std::shared_ptr<spdlog::logger> log =
      std::make_shared<spdlog::logger>("test", std::make_shared<spdlog::sinks::null_sink_mt>());
  IndicatorCatalogue cat = IndicatorCatalogue::load(test::catalogue_path());
  IndicatorState state{cat};
  AgentTable agents{cat};
  BatchIngest ingest{cat, agents, state, log};
  AgentPresence presence{cat, agents, log};
  std::vector<Published> published;
  bool connected = true;
  bool owned = true;
  DeliveryConfirmer confirmer{cat, agents, ingest,
                              [this](const std::string& topic, std::span<const std::uint8_t> payload, bool retained) {
                                if (!connected) return false;
                                Published p{topic, {}, retained};
                                EXPECT_EQ(decode_delivery_confirm(payload, p.confirm), DecodeError::None);
                                published.push_back(p);
                                return true;
                              },
                              [this](std::uint32_t) { return owned; }};
  const std::string events_topic = "postwatch/v1/sub-saharan-africa/bamako/a1/events";
  const std::string confirm_topic = "postwatch/v1/sub-saharan-africa/bamako/a1/confirm";
  std::int64_t now = 1'000'000;

  void feed(std::vector<std::uint64_t> seqs, std::int64_t observed_offset_ms = 0) {
    EventBatch b{"a1", "bamako", now, {}};
    for (auto s : seqs)
      b.events.push_back(
          IndicatorEvent{s, now + observed_offset_ms, "terrorism_threat_level", ValueKind::Level, 3, "", "", {}});
    ingest.on_message(events_topic, encode_batch(b), now);
  }

  void heartbeat(std::uint64_t sent_through, std::uint64_t confirmed_through, std::uint64_t held_from = 0,
                 std::vector<std::string> trusted = {}) {
    AgentState st;
    st.aggregator_key_ids = std::move(trusted);
    st.agent_id = "a1";
    st.post_id = "bamako";
    st.at_ms = now;
    st.has_metrics = true;
    st.metrics.sent_through_seq = sent_through;
    st.metrics.confirmed_through_seq = confirmed_through;
    st.metrics.held_from_seq = held_from;
    presence.on_message("postwatch/v1/sub-saharan-africa/bamako/a1/heartbeat", encode_agent_state(st), now);
  }
  void birth(std::uint64_t first_unacked, bool awaits_confirmation = true) {
    AgentState st;
    st.awaits_confirmation = awaits_confirmation;
    st.agent_id = "a1";
    st.post_id = "bamako";
    st.at_ms = now;
    st.online = true;
    st.first_unacked_seq = first_unacked;
    presence.on_message("postwatch/v1/sub-saharan-africa/bamako/a1/state", encode_agent_state(st), now);
  }
  void tick(std::uint64_t handed, std::uint64_t committed, bool caught_up = true) {
    now += 1000;
    confirmer.tick({handed, committed}, caught_up, now);
  }
};

}  // namespace

TEST_F(DeliveryConfirmerTest, ConfirmsOnlyWhatTheStoreHasCommitted) {
  feed({1, 2, 3, 4, 5});
  tick(5, 0);  // handed to the store, not committed
  EXPECT_TRUE(published.empty());
  EXPECT_EQ(confirmer.counters().waiting_for_store, 1u);
  tick(5, 4);
  EXPECT_TRUE(published.empty()) << "one event of that mark is not on disk yet";
  tick(5, 5);
  ASSERT_EQ(published.size(), 1u);
  EXPECT_EQ(published[0].topic, confirm_topic);
  EXPECT_TRUE(published[0].retained);
  EXPECT_EQ(published[0].confirm.through_seq, 5u);
  EXPECT_EQ(published[0].confirm.resend_from, 0u);
  EXPECT_EQ(published[0].confirm.post_id, "bamako");
  EXPECT_EQ(published[0].confirm.agent_id, "a1");
  EXPECT_EQ(confirmer.counters().waiting_for_store, 0u);

  tick(5, 5);  // nothing new: nothing sent again
  EXPECT_EQ(published.size(), 1u);
}

TEST_F(DeliveryConfirmerTest, AHoleHoldsTheConfirmationBack) {
  feed({1, 2, 4, 5});
  tick(4, 4);
  ASSERT_EQ(published.size(), 1u);
  EXPECT_EQ(published.back().confirm.through_seq, 2u);
  feed({3});
  tick(5, 5);
  ASSERT_EQ(published.size(), 2u);
  EXPECT_EQ(published.back().confirm.through_seq, 5u);
}

TEST_F(DeliveryConfirmerTest, APublishThatFailsIsRetriedOnTheNextTick) {
  feed({1, 2});
  connected = false;
  tick(2, 2);
  EXPECT_TRUE(published.empty());
  EXPECT_EQ(confirmer.counters().publish_failures, 1u);
  connected = true;
  tick(2, 2);
  ASSERT_EQ(published.size(), 1u);
  EXPECT_EQ(published[0].confirm.through_seq, 2u);
  EXPECT_EQ(agents.find("bamako/a1")->confirm.published, 2u);
}

TEST_F(DeliveryConfirmerTest, PostsOfAnotherInstanceAreNotConfirmedHere) {
  owned = false;
  feed({1, 2});
  heartbeat(9, 0);
  tick(2, 2);
  heartbeat(9, 0);
  tick(2, 2);
  EXPECT_TRUE(published.empty());
}

TEST_F(DeliveryConfirmerTest, AsksForAResendWhenTwoHeartbeatsReportMoreThanItHas) {
  feed({1, 2, 3});
  tick(3, 3);
  ASSERT_EQ(published.size(), 1u);
  heartbeat(10, 3);  // the broker acknowledged 4..10, which never arrived
  tick(3, 3);
  EXPECT_EQ(published.size(), 1u) << "one heartbeat is not enough: 4..10 may still be on their way";
  tick(3, 3);
  EXPECT_EQ(published.size(), 1u) << "no new heartbeat: no new evidence";
  heartbeat(10, 3);
  tick(3, 3, /*caught_up=*/false);
  EXPECT_EQ(published.size(), 1u) << "a backlog in front of ingest may hold them";
  heartbeat(10, 3);
  tick(3, 3);
  heartbeat(10, 3);
  tick(3, 3);
  ASSERT_EQ(published.size(), 2u);
  EXPECT_FALSE(published[1].retained);
  EXPECT_EQ(published[1].confirm.resend_from, 4u);
  EXPECT_EQ(published[1].confirm.through_seq, 3u);
  EXPECT_EQ(confirmer.counters().resend_requests, 1u);

  feed({4, 5, 6, 7, 8, 9, 10});  // the resend arrives
  heartbeat(10, 3);
  tick(10, 10);
  heartbeat(10, 10);
  tick(10, 10);
  EXPECT_EQ(confirmer.counters().resend_requests, 1u);
  EXPECT_EQ(published.back().confirm.through_seq, 10u);
}

TEST_F(DeliveryConfirmerTest, StopsWaitingForSeqsTheAgentAlreadyReleased) {
  // seq 3 was refused by an earlier run and confirmed then; the store holds no trace of it.
  feed({1, 2, 4, 5});
  tick(4, 4);
  EXPECT_EQ(published.back().confirm.through_seq, 2u);
  heartbeat(5, 5);
  tick(4, 4);
  heartbeat(5, 5);
  tick(4, 4);
  EXPECT_EQ(confirmer.counters().settled_by_agent, 1u);
  EXPECT_EQ(confirmer.counters().resend_requests, 0u);
  tick(4, 4);
  EXPECT_EQ(published.back().confirm.through_seq, 5u);
  EXPECT_EQ(ingest.counters().events_gaps, 0u);
}

TEST_F(DeliveryConfirmerTest, AnEventFromTheFutureIsRefusedOnceAndDoesNotHoldTheConfirmationBack) {
  feed({1});
  feed({2}, /*observed_offset_ms=*/24LL * 3600 * 1000);
  feed({3});
  EXPECT_EQ(ingest.counters().events_future, 1u);
  feed({2}, 24LL * 3600 * 1000);  // resent: a duplicate, not counted again
  EXPECT_EQ(ingest.counters().events_future, 1u);
  tick(2, 2);
  EXPECT_EQ(published.back().confirm.through_seq, 3u);
}

TEST_F(DeliveryConfirmerTest, AHoleThatOutlivesATickIsAskedForAgain) {
  feed({1, 2, 3});
  tick(3, 3);
  feed({6, 7});  // 4 and 5 lost on the way (later seqs arrived)
  tick(5, 5);
  EXPECT_EQ(confirmer.counters().resend_requests, 0u) << "a hole seen once may be a message on its way";
  tick(5, 5, /*caught_up=*/false);
  EXPECT_EQ(confirmer.counters().resend_requests, 0u) << "with a backlog in front of ingest, it may be queued";
  tick(5, 5);
  EXPECT_EQ(confirmer.counters().resend_requests, 0u);
  tick(5, 5);
  ASSERT_EQ(confirmer.counters().resend_requests, 1u);
  EXPECT_EQ(published.back().confirm.resend_from, 4u);
  EXPECT_FALSE(published.back().retained);
  tick(5, 5);
  EXPECT_EQ(confirmer.counters().resend_requests, 1u) << "the resend gets a few seconds to arrive";
  feed({4, 5, 6, 7});
  tick(7, 7);
  EXPECT_EQ(published.back().confirm.through_seq, 7u);
  tick(7, 7);
  tick(7, 7);
  tick(7, 7);
  EXPECT_EQ(confirmer.counters().resend_requests, 1u);
}

TEST_F(DeliveryConfirmerTest, AStoreThatStallsDoesNotPileUpMarks) {
  // A full disk: nothing commits for 200 ticks while the agent keeps sending. What waits stays
  // bounded (one entry per agent in at most kMaxMarks marks), and once the store catches up
  // the newest watermark goes out.
  std::uint64_t seq = 0;
  for (int i = 0; i < 200; ++i) {
    feed({++seq});
    tick(seq, 0);
  }
  EXPECT_TRUE(published.empty());
  EXPECT_LE(confirmer.counters().waiting_for_store, 16u);
  tick(seq, seq);
  ASSERT_FALSE(published.empty());
  EXPECT_EQ(published.back().confirm.through_seq, seq);
  EXPECT_EQ(confirmer.counters().waiting_for_store, 0u);
}

TEST_F(DeliveryConfirmerTest, AHoleAtTheFirstSeqIsAskedForToo) {
  // The aggregator crashed before committing seq 1; the restarted one sees 2.. first, and the
  // agent's birth says its spool starts at 1. Nothing is confirmed (0 is the watermark), but
  // the hole below 2 is a loss like any other.
  feed({2, 3});
  birth(1);
  tick(2, 2);
  tick(2, 2);
  EXPECT_TRUE(published.empty() || published.back().confirm.resend_from != 0);
  tick(2, 2);
  ASSERT_EQ(confirmer.counters().resend_requests, 1u);
  EXPECT_EQ(published.back().confirm.resend_from, 1u);
  feed({1, 2, 3});
  tick(3, 3);
  EXPECT_EQ(published.back().confirm.through_seq, 3u);
  EXPECT_EQ(ingest.counters().events_gaps, 0u);
}

TEST_F(DeliveryConfirmerTest, AnAgentFirstSeenMidStreamIsConfirmedOnlyOnceItsBirthPlacesIt) {
  // A fresh store and a broker that kept only the later part of the queue: 5000.. come first.
  feed({5000, 5001, 5002});
  tick(3, 3);
  tick(3, 3);
  EXPECT_TRUE(published.empty()) << "seqs below 5000 may still be in the agent's spool";
  birth(4990);  // the agent's spool started at 4990 when it connected
  tick(3, 3);
  EXPECT_EQ(confirmer.counters().anchored, 1u);
  ASSERT_EQ(published.size(), 1u);
  EXPECT_EQ(published.back().confirm.through_seq, 4989u) << "4990..4999 are still to come";
  tick(3, 3);
  ASSERT_EQ(confirmer.counters().resend_requests, 1u);
  EXPECT_EQ(published.back().confirm.resend_from, 4990u);
  std::vector<std::uint64_t> resent;
  for (std::uint64_t s = 4990; s < 5000; ++s) resent.push_back(s);
  feed(resent);
  tick(13, 13);
  EXPECT_EQ(published.back().confirm.through_seq, 5002u);
  EXPECT_EQ(ingest.counters().events_gaps, 0u);
  EXPECT_EQ(confirmer.counters().anchored, 1u);
}

TEST_F(DeliveryConfirmerTest, AHeartbeatsConfirmationPlacesAnAgentFirstSeenMidStream) {
  feed({700, 701});
  heartbeat(701, 699);  // an earlier run confirmed through 699
  tick(2, 2);
  EXPECT_EQ(confirmer.counters().anchored, 1u);
  ASSERT_EQ(published.size(), 1u);
  EXPECT_EQ(published.back().confirm.through_seq, 701u);
}

TEST_F(DeliveryConfirmerTest, TheBirthOfAnAgentThatReleasesOnPubackPlacesNothing) {
  // It holds nothing to resend: seqs below the first one seen stay unknown, never gaps.
  feed({5000, 5001});
  birth(1, /*awaits_confirmation=*/false);
  tick(2, 2);
  tick(2, 2);
  EXPECT_EQ(confirmer.counters().anchored, 0u);
  EXPECT_EQ(confirmer.counters().resend_requests, 0u);
  EXPECT_TRUE(published.empty());
  std::vector<std::uint64_t> later;
  for (std::uint64_t s = 5002; s < 5002 + 2 * SeqWindow::kWindow; ++s) later.push_back(s);
  feed(later);
  EXPECT_EQ(ingest.counters().events_gaps, 0u);
}

TEST_F(DeliveryConfirmerTest, HolesBelowWhatTheAgentStillHoldsAreGivenUpAsGaps) {
  // drop_oldest removed 4..7 from the agent's spool before it sent them: no resend can come.
  birth(1);
  feed({1, 2, 3, 8, 9, 10});
  tick(6, 6);
  ASSERT_EQ(published.size(), 1u);
  EXPECT_EQ(published.back().confirm.through_seq, 3u);
  heartbeat(10, 3, /*held_from=*/8);
  tick(6, 6);
  EXPECT_EQ(confirmer.counters().dropped_given_up, 4u);
  EXPECT_EQ(ingest.counters().events_gaps, 4u);
  tick(6, 6);
  ASSERT_FALSE(published.empty());
  EXPECT_EQ(published.back().confirm.through_seq, 10u);
  EXPECT_EQ(confirmer.counters().resend_requests, 0u) << "nothing asked for that the agent no longer has";
  feed({5});  // sent before it was dropped, late: counted once, as the gap the agent reported
  EXPECT_EQ(ingest.counters().events_duplicate, 1u);
  heartbeat(10, 10, 11);
  tick(6, 6);
  EXPECT_EQ(confirmer.counters().dropped_given_up, 4u) << "held_from past everything seen gives up nothing more";
}

TEST_F(DeliveryConfirmerTest, WhatTheAgentWasConfirmedSettlesBeforeHeldFromGivesUp) {
  // An earlier run confirmed through 5 (the agent released 1..5); held_from 8 then says only
  // 6 and 7 were dropped. Seqs it was confirmed are not gaps.
  birth(1);
  feed({1, 8});
  tick(2, 2);
  heartbeat(8, 5, 8);
  tick(2, 2);
  EXPECT_EQ(confirmer.counters().dropped_given_up, 0u) << "waits for the settle of 2..5 first";
  heartbeat(8, 5, 8);  // the second heartbeat in a row that says so: settle 2..5
  tick(2, 2);
  tick(2, 2);
  EXPECT_EQ(confirmer.counters().settled_by_agent, 1u);
  EXPECT_EQ(confirmer.counters().dropped_given_up, 2u);
  EXPECT_EQ(ingest.counters().events_gaps, 2u);
}

TEST_F(DeliveryConfirmerTest, AHoleOfAnAgentThatKeepsItsEventsWaitsForTheResendPastTheShortWindow) {
  birth(1);  // it keeps its events until confirmed
  feed({1});
  std::vector<std::uint64_t> later;
  for (std::uint64_t s = 3; s < 3 + 2 * SeqWindow::kWindow; ++s) {
    later.push_back(s);
    if (later.size() % 256 == 0) feed({later.end() - 256, later.end()});
  }
  tick(later.size() + 1, later.size() + 1);
  tick(later.size() + 1, later.size() + 1);
  EXPECT_EQ(ingest.counters().events_gaps, 0u);
  EXPECT_EQ(published.back().confirm.through_seq, 1u);
  EXPECT_EQ(confirmer.counters().resend_requests, 1u);
  EXPECT_EQ(published.back().confirm.resend_from, 2u);
  feed({2});
  tick(later.size() + 2, later.size() + 2);
  tick(later.size() + 2, later.size() + 2);
  EXPECT_EQ(published.back().confirm.through_seq, 2 + 2 * SeqWindow::kWindow);
}

// The aggregator's key rotation: every confirmation carries the notice; an agent whose
// heartbeat says it lacks the next key gets its last confirmation again, at most every
// kNoticeGapMs, and none once it reports the key. Agents not enrolled (no keys reported) and
// agents never confirmed in this run get none.
TEST_F(DeliveryConfirmerTest, AnAgentLackingTheNextKeyGetsItsLastConfirmationAgainWithTheNotice) {
  const auto next = SigningKey::generate();
  const std::string old_id = "0123456789abcdef";
  confirmer.set_key_notice(next.public_key(), {});
  heartbeat(0, 0, 0, {old_id});
  tick(0, 0);
  EXPECT_TRUE(published.empty()) << "never confirmed in this run: nothing to send again";
  feed({1, 2, 3});
  tick(3, 3);
  ASSERT_EQ(published.size(), 1u);
  EXPECT_EQ(published[0].confirm.next_key,
            std::vector<std::uint8_t>(next.public_key().begin(), next.public_key().end()));

  heartbeat(3, 3, 4, {old_id});
  tick(3, 3);
  ASSERT_EQ(published.size(), 2u);
  EXPECT_EQ(published[1].confirm.through_seq, 3u);
  EXPECT_TRUE(published[1].retained);
  EXPECT_EQ(published[1].confirm.next_key.size(), 32u);
  EXPECT_EQ(confirmer.counters().key_notices, 1u);
  heartbeat(3, 3, 4, {old_id});
  tick(3, 3);
  EXPECT_EQ(published.size(), 2u) << "within kNoticeGapMs";
  now += DeliveryConfirmer::kNoticeGapMs;
  heartbeat(3, 3, 4, {old_id});
  tick(3, 3);
  EXPECT_EQ(published.size(), 3u);
  now += DeliveryConfirmer::kNoticeGapMs;
  heartbeat(3, 3, 4, {old_id, next.key_id()});
  tick(3, 3);
  EXPECT_EQ(published.size(), 3u) << "it trusts the next key now";

  // After the switch: the retired key goes in every confirmation, and to an agent still trusting it.
  confirmer.set_key_notice(std::nullopt, {old_id});
  now += DeliveryConfirmer::kNoticeGapMs;
  heartbeat(3, 3, 4, {old_id, next.key_id()});
  tick(3, 3);
  ASSERT_EQ(published.size(), 4u);
  EXPECT_TRUE(published[3].confirm.next_key.empty());
  EXPECT_EQ(published[3].confirm.retired_key_ids, std::vector<std::string>{old_id});
  now += DeliveryConfirmer::kNoticeGapMs;
  heartbeat(3, 3, 4, {next.key_id()});
  tick(3, 3);
  EXPECT_EQ(published.size(), 4u);
  EXPECT_EQ(confirmer.counters().key_notices, 3u);

  // An agent that reports no keys (not enrolled, or from before rotation) is sent none.
  confirmer.set_key_notice(next.public_key(), {old_id});
  now += DeliveryConfirmer::kNoticeGapMs;
  heartbeat(3, 3, 4, {});
  tick(3, 3);
  EXPECT_EQ(published.size(), 4u);
}
