#include "postwatch/agent/confirm_tracker.hpp"

#include <gtest/gtest.h>

using postwatch::agent::ConfirmTracker;
using namespace std::chrono_literals;

namespace {
const ConfirmTracker::Clock::time_point t0{std::chrono::hours(1)};
ConfirmTracker tracker() { return ConfirmTracker(15s, 60s); }
}  // namespace

TEST(ConfirmTracker, AConfirmationReleasesWhatTheSpoolHolds) {
  auto t = tracker();
  EXPECT_FALSE(t.releasable(1, 11));
  EXPECT_FALSE(t.pending(1, 11));
  auto c = t.confirmed(5, 0, 10);
  EXPECT_FALSE(c.refused);
  EXPECT_FALSE(c.resend_requested);
  EXPECT_EQ(t.confirmed_through(), 5u);
  EXPECT_EQ(t.releasable(1, 11), 5u);
  EXPECT_TRUE(t.pending(1, 11));
  // Released: the spool now starts after it, nothing more to do.
  EXPECT_FALSE(t.releasable(6, 11));
  EXPECT_FALSE(t.pending(6, 11));
}

TEST(ConfirmTracker, AnOutOfOrderConfirmationNeverMovesBack) {
  auto t = tracker();
  t.confirmed(8, 0, 10);
  auto c = t.confirmed(3, 0, 10);  // an older one, delivered late
  EXPECT_FALSE(c.refused);
  EXPECT_EQ(t.confirmed_through(), 8u);
  EXPECT_EQ(t.releasable(1, 11), 8u);
}

TEST(ConfirmTracker, ADuplicateConfirmationReleasesNothingNew) {
  auto t = tracker();
  t.confirmed(4, 0, 10);
  ASSERT_EQ(t.releasable(1, 11), 4u);
  auto c = t.confirmed(4, 0, 10);  // the retained one again, at a resubscribe
  EXPECT_FALSE(c.refused);
  EXPECT_FALSE(t.releasable(5, 11));
  EXPECT_EQ(t.confirmed_through(), 4u);
}

TEST(ConfirmTracker, AConfirmationBeyondWhatWasIssuedIsRefusedAndStaysRefused) {
  auto t = tracker();
  t.confirmed(3, 0, 10);
  auto c = t.confirmed(500, 2, 10);  // an old spool's confirmation: this one was reset
  EXPECT_TRUE(c.refused);
  EXPECT_TRUE(c.first_refusal);
  EXPECT_FALSE(c.resend_requested);  // its resend request is not obeyed either
  EXPECT_EQ(t.confirmed_through(), 3u);
  EXPECT_FALSE(t.pending(4, 11));
  // Retained, it comes back at every reconnect, even once this spool has issued that many.
  auto again = t.confirmed(500, 0, 600);
  EXPECT_TRUE(again.refused);
  EXPECT_FALSE(again.first_refusal);  // warned about once
  EXPECT_EQ(t.confirmed_through(), 3u);
  EXPECT_FALSE(t.releasable(4, 601));
  // A confirmation from the aggregator that does know this spool is obeyed.
  EXPECT_FALSE(t.confirmed(520, 0, 600).refused);
  EXPECT_EQ(t.releasable(4, 601), 520u);
}

TEST(ConfirmTracker, TheLowestResendRequestWins) {
  auto t = tracker();
  EXPECT_TRUE(t.confirmed(2, 7, 20).resend_requested);
  t.request_resend(9);
  t.request_resend(5);
  t.request_resend(0);  // asks for nothing
  EXPECT_TRUE(t.pending(3, 21));
  auto r = t.take_resend(15, 3);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->from, 5u);
  EXPECT_EQ(r->cursor, 5u);
  EXPECT_FALSE(t.take_resend(15, 3));  // taken
  EXPECT_FALSE(t.pending(3, 21));
}

TEST(ConfirmTracker, AResendOfSeqsNotYetSentNeedsNothing) {
  auto t = tracker();
  t.request_resend(12);
  EXPECT_FALSE(t.take_resend(12, 1));  // the cursor is there already
  EXPECT_FALSE(t.pending(1, 20));      // and the request is gone
}

TEST(ConfirmTracker, AResendBelowTheSpoolStartsAtItsFirstSeq) {
  auto t = tracker();
  t.request_resend(2);  // released (confirmed) or dropped by the overflow policy since
  auto r = t.take_resend(30, 10);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->from, 2u);
  EXPECT_EQ(r->cursor, 10u);
}

TEST(ConfirmTracker, AResendAskedOfTheAgentIsBoundedByItsSpool) {
  auto t = tracker();
  EXPECT_EQ(t.request_resend_within(3, 10, 20), 10u);
  EXPECT_EQ(t.request_resend_within(25, 10, 20), 0u);  // nothing held from there
  EXPECT_EQ(t.request_resend_within(20, 10, 20), 0u);
  auto r = t.take_resend(20, 10);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->from, 10u);
}

TEST(ConfirmTracker, AReconnectDropsAPendingResend) {
  auto t = tracker();
  t.request_resend(4);
  t.reconnected();  // the main lane starts over from the spool's first seq anyway
  EXPECT_FALSE(t.pending(1, 10));
  EXPECT_FALSE(t.take_resend(10, 1));
}

TEST(ConfirmTracker, ARestartedAgentReleasesFromItsSpoolPosition) {
  // After a restart the spool holds [101, 151) and the tracker starts empty; the retained
  // confirmation comes back with the subscription.
  auto t = tracker();
  EXPECT_FALSE(t.confirmed(100, 0, 150).refused);  // what the spool released before the restart
  EXPECT_FALSE(t.releasable(101, 151));
  EXPECT_FALSE(t.pending(101, 151));
  t.confirmed(120, 0, 150);
  EXPECT_EQ(t.releasable(101, 151), 120u);
}

TEST(ConfirmTracker, AnOverdueConfirmationAsksForTheLastWindowAgain) {
  auto t = tracker();
  // Seqs 1..100 acknowledged by the broker, none confirmed.
  EXPECT_FALSE(t.stalled(t0, 1, 101, 100, 40));
  EXPECT_FALSE(t.stalled(t0 + 14s, 1, 101, 100, 40));
  auto r = t.stalled(t0 + 15s, 1, 101, 100, 40);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->from, 61u);
  EXPECT_EQ(r->through, 100u);
  EXPECT_EQ(r->waited, 15s);
  auto resend = t.take_resend(101, 1);
  ASSERT_TRUE(resend);
  EXPECT_EQ(resend->cursor, 61u);
  // Then twice as long.
  EXPECT_FALSE(t.stalled(t0 + 44s, 1, 101, 100, 40));
  ASSERT_TRUE(t.stalled(t0 + 45s, 1, 101, 100, 40));
}

TEST(ConfirmTracker, AStallResendNeverStartsBelowTheSpool) {
  auto t = tracker();
  t.stalled(t0, 90, 101, 100, 40);
  auto r = t.stalled(t0 + 15s, 90, 101, 100, 40);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->from, 90u);
  auto small = tracker();
  small.stalled(t0, 1, 6, 5, 40);
  auto s = small.stalled(t0 + 15s, 1, 6, 5, 40);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->from, 1u);
}

TEST(ConfirmTracker, ProgressOrNothingAcknowledgedIsNoStall) {
  auto t = tracker();
  // Nothing the broker acknowledged is held: sent_through below the spool's first seq.
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(t.stalled(t0 + i * 20s, 11, 20, 10, 40));
  // Confirmations keep coming: the wait starts over each time.
  auto p = tracker();
  EXPECT_FALSE(p.stalled(t0, 1, 101, 100, 40));
  p.confirmed(10, 0, 100);
  EXPECT_FALSE(p.stalled(t0 + 10s, 11, 101, 100, 40));
  p.confirmed(20, 0, 100);
  EXPECT_FALSE(p.stalled(t0 + 20s, 21, 101, 100, 40));
  EXPECT_FALSE(p.stalled(t0 + 34s, 21, 101, 100, 40));
  EXPECT_TRUE(p.stalled(t0 + 35s, 21, 101, 100, 40));
}

TEST(ConfirmTracker, AReconnectStartsTheStallWaitOver) {
  auto t = tracker();
  t.stalled(t0, 1, 101, 100, 40);
  ASSERT_TRUE(t.stalled(t0 + 15s, 1, 101, 100, 40));  // next wait: 30 s
  t.reconnected();
  EXPECT_FALSE(t.stalled(t0 + 16s, 1, 101, 100, 40));
  EXPECT_FALSE(t.stalled(t0 + 30s, 1, 101, 100, 40));
  EXPECT_TRUE(t.stalled(t0 + 31s, 1, 101, 100, 40));  // 15 s again
}
