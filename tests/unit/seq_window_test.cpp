#include "ingest/seq_window.hpp"

#include "support/seq_window_model.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <vector>

using postwatch::aggregator::SeqWindow;
using V = SeqWindow::Verdict;

TEST(SeqWindow, InOrderThenDuplicates) {
  SeqWindow w(1);
  for (std::uint64_t s = 1; s <= 100; ++s) EXPECT_EQ(w.accept(s), V::New);
  for (std::uint64_t s = 1; s <= 100; ++s) EXPECT_EQ(w.accept(s), V::Duplicate);
  EXPECT_EQ(w.base(), 101u);
  EXPECT_EQ(w.gaps(), 0u);
}

TEST(SeqWindow, OutOfOrderWithinWindowIsExact) {
  std::vector<std::uint64_t> seqs(3000);
  std::iota(seqs.begin(), seqs.end(), 1);
  std::mt19937 rng(7);
  std::shuffle(seqs.begin(), seqs.end(), rng);
  SeqWindow w(1);
  for (auto s : seqs) EXPECT_EQ(w.accept(s), V::New);
  for (auto s : seqs) EXPECT_EQ(w.accept(s), V::Duplicate);
  EXPECT_EQ(w.gaps(), 0u);
  EXPECT_EQ(w.pending_holes(), 0u);
}

TEST(SeqWindow, HolesBecomeGapsWhenTheWindowMovesOn) {
  SeqWindow w(1);
  EXPECT_EQ(w.accept(1), V::New);
  EXPECT_EQ(w.accept(5), V::New);  // 2, 3, 4 missing
  EXPECT_EQ(w.pending_holes(), 3u);
  EXPECT_EQ(w.accept(3), V::New);  // late but within the window
  EXPECT_EQ(w.pending_holes(), 2u);
  EXPECT_EQ(w.accept(5 + SeqWindow::kWindow), V::New);  // forces 2 and 4 out of the window
  EXPECT_EQ(w.gaps(), 2u);
  EXPECT_EQ(w.pending_holes(), SeqWindow::kWindow - 1);  // 6 .. kWindow+4 may still come
  EXPECT_EQ(w.accept(2), V::Duplicate);                  // settled: never counted twice
  EXPECT_EQ(w.accept(6), V::New);
}

TEST(SeqWindow, AHoleOfAnAgentThatKeepsItsEventsWaitsPastTheShortWindow) {
  // BatchIngest passes kKeptWindow for an agent that holds every event until confirmed:
  // a broker that lost a message while 2000 events/s went on must not cost the hole.
  SeqWindow w(1);
  EXPECT_EQ(w.accept(1, SeqWindow::kKeptWindow), V::New);
  for (std::uint64_t s = 3; s <= 2 + 3 * SeqWindow::kWindow; ++s)
    ASSERT_EQ(w.accept(s, SeqWindow::kKeptWindow), V::New);
  EXPECT_EQ(w.gaps(), 0u);
  EXPECT_EQ(w.settled_through(), 1u) << "2 may still be resent";
  EXPECT_EQ(w.accept(2, SeqWindow::kKeptWindow), V::New);  // the resend
  EXPECT_EQ(w.settled_through(), 2 + 3 * SeqWindow::kWindow);
  // The backstop still frees a hole nobody can fill.
  w.accept(w.highest() + 2, SeqWindow::kKeptWindow);
  const std::uint64_t hole = w.highest() - 1;
  w.accept(hole + 1 + SeqWindow::kKeptWindow, SeqWindow::kKeptWindow);
  EXPECT_EQ(w.gaps(), 1u);
  EXPECT_GT(w.settled_through(), hole);
}

TEST(SeqWindow, GiveUpThroughCountsWhatTheAgentDroppedAsGaps) {
  SeqWindow w(1);
  for (std::uint64_t s : {1, 2, 3, 5, 8, 9, 10}) w.accept(s, SeqWindow::kKeptWindow);
  EXPECT_EQ(w.settled_through(), 3u);
  EXPECT_EQ(w.give_up_through(7), 3u);  // 4, 6, 7 dropped by the agent; 5 was seen
  EXPECT_EQ(w.gaps(), 3u);
  EXPECT_EQ(w.settled_through(), 10u);  // on over 8..10, seen already
  EXPECT_EQ(w.accept(6), V::Duplicate) << "a dropped seq arriving late is not applied twice over a gap";
  EXPECT_EQ(w.give_up_through(7), 0u) << "nothing is counted twice";
  EXPECT_EQ(w.give_up_through(12), 2u);  // beyond the highest: 11 and 12 dropped unsent
  EXPECT_EQ(w.highest(), 12u);
  EXPECT_EQ(w.settled_through(), 12u);
  EXPECT_EQ(w.accept(13), V::New);
}

TEST(SeqWindow, GiveUpThroughDoesNothingWhileUnanchored) {
  SeqWindow w(5000);  // seqs below 5000 unknown: dropped, or released long ago?
  w.accept(5000);
  w.accept(5002);
  EXPECT_EQ(w.give_up_through(5001), 0u);
  EXPECT_EQ(w.gaps(), 0u);
  EXPECT_EQ(w.accept(5001), V::New);
  EXPECT_EQ(SeqWindow().give_up_through(10), 0u) << "nothing seen, nothing to give up";
}

TEST(SeqWindow, MemoryIsBoundedWhateverTheSeqs) {
  SeqWindow w(0);
  EXPECT_EQ(w.accept(1'000'000'000'000ULL), V::New);
  EXPECT_EQ(w.accept(1'000'000'000'000ULL), V::Duplicate);
  EXPECT_EQ(w.accept(5), V::Duplicate);
  EXPECT_EQ(sizeof(SeqWindow) < 1024, true);
}

TEST(SeqWindow, SettledThroughStopsAtTheFirstHoleUntilItIsFilledOrGivenUp) {
  SeqWindow w(1);
  EXPECT_EQ(w.settled_through(), 0u);  // nothing seen
  for (std::uint64_t s = 1; s <= 10; ++s) w.accept(s);
  EXPECT_EQ(w.settled_through(), 10u);
  w.accept(12);
  w.accept(13);
  EXPECT_EQ(w.settled_through(), 10u) << "11 is missing: 12 and 13 may not be confirmed yet";
  w.accept(11);
  EXPECT_EQ(w.settled_through(), 13u);
  w.accept(15);
  w.accept(15 + SeqWindow::kWindow);  // 14 given up as a gap (counted), so it no longer holds back
  EXPECT_EQ(w.gaps(), 1u);
  EXPECT_EQ(w.settled_through(), 15u);
}

TEST(SeqWindow, FirstSeenMidStreamConfirmsNothingUntilAnchored) {
  // An agent first seen at 5000 (a fresh store, a broker that lost the start of its queue):
  // the seqs below may be ones it still holds, so nothing is confirmed across them.
  SeqWindow w(5000);
  w.accept(5000);
  w.accept(5001);
  EXPECT_FALSE(w.anchored());
  EXPECT_EQ(w.settled_through(), 0u);
  EXPECT_EQ(w.pending_holes(), 0u) << "below the first seq seen is not known to be missing";
  // Older seqs are new however far below, and counted once.
  EXPECT_EQ(w.accept(1), V::New);
  EXPECT_EQ(w.accept(4000), V::New);
  EXPECT_EQ(w.accept(4000), V::Duplicate);
  // A long run on does not give the unknown seqs up as gaps.
  for (std::uint64_t s = 5002; s <= 5000 + 3 * SeqWindow::kWindow; ++s) ASSERT_EQ(w.accept(s), V::New);
  EXPECT_EQ(w.gaps(), 0u);
  EXPECT_EQ(w.settled_through(), 0u);

  // The agent's birth: its spool starts at 3000, so 3000..4999 (not 4000) are still to come.
  w.settle_through(2999);
  EXPECT_TRUE(w.anchored());
  EXPECT_EQ(w.settled_through(), 2999u);
  EXPECT_EQ(w.pending_holes(), 1999u);
  EXPECT_EQ(w.accept(2000), V::Duplicate) << "released by the agent: settled";
  // The holes anchoring revealed get a whole window of later seqs to arrive in.
  const std::uint64_t top = 5000 + 3 * SeqWindow::kWindow;
  for (std::uint64_t s = top + 1; s < top + SeqWindow::kWindow; ++s) ASSERT_EQ(w.accept(s), V::New);
  EXPECT_EQ(w.gaps(), 0u);
  for (std::uint64_t s = 3000; s < 5000; ++s) EXPECT_EQ(w.accept(s), s == 4000 ? V::Duplicate : V::New) << s;
  EXPECT_EQ(w.settled_through(), top + SeqWindow::kWindow - 1);
  EXPECT_EQ(w.gaps(), 0u);
}

TEST(SeqWindow, HolesAnchoringRevealsAreGivenUpAWindowLater) {
  SeqWindow w(100);
  for (std::uint64_t s = 100; s <= 200; ++s) w.accept(s);
  w.settle_through(49);  // 50..99 still to come
  EXPECT_EQ(w.settled_through(), 49u);
  w.accept(200 + SeqWindow::kWindow);
  EXPECT_EQ(w.gaps(), 50u) << "a window past the highest seq at anchoring, they are given up";
  EXPECT_EQ(w.settled_through(), 200u);
}

TEST(SeqWindow, RunsStayBoundedWhateverTheOrder) {
  SeqWindow w(1);
  // Every other seq: each one a separate run, until the lowest holes are given up.
  for (std::uint64_t s = 2; s <= 2 * (SeqWindow::kMaxRuns + 10); s += 2) w.accept(s);
  EXPECT_EQ(w.gaps(), 10u) << "1, 3, 5, ... given up once the runs exceed the bound";
  EXPECT_EQ(w.pending_holes(), SeqWindow::kMaxRuns) << "one hole below each run";
  EXPECT_EQ(w.snapshot().seen.size(), SeqWindow::kMaxRuns);
}

TEST(SeqWindow, SnapshotRoundTripKeepsEverything) {
  SeqWindow w(5000);
  for (std::uint64_t s : {5000, 5001, 5003, 4000, 7}) w.accept(s);
  auto r = SeqWindow::restore(w.snapshot());
  EXPECT_FALSE(r.anchored());
  EXPECT_EQ(r.accept(4000), V::Duplicate);
  EXPECT_EQ(r.accept(5002), V::New);
  r.settle_through(3999);
  EXPECT_EQ(r.settled_through(), 4000u) << "4001..4999 are still to come";
  r.settle_through(4999);
  EXPECT_EQ(r.settled_through(), 5003u);
  EXPECT_EQ(r.gaps(), 0u);
  EXPECT_EQ(r.snapshot().seen, std::vector<SeqWindow::Run>{});
}

TEST(SeqWindow, SettleThroughForgetsHolesTheAgentNoLongerHoldsWithoutCountingGaps) {
  SeqWindow w(1);
  for (std::uint64_t s : {1, 2, 4, 5, 8}) w.accept(s);  // 3, 6, 7 were refused by an earlier run
  EXPECT_EQ(w.settled_through(), 2u);
  w.settle_through(6);
  EXPECT_EQ(w.settled_through(), 6u);
  EXPECT_EQ(w.gaps(), 0u);
  EXPECT_EQ(w.accept(3), V::Duplicate);
  EXPECT_EQ(w.accept(7), V::New);  // still one the agent may hold
  EXPECT_EQ(w.settled_through(), 8u);
  w.settle_through(4);  // behind: nothing changes
  EXPECT_EQ(w.settled_through(), 8u);
  EXPECT_EQ(w.accept(9), V::New);
  EXPECT_EQ(w.gaps(), 0u);
}

// Random operations against a plain model (tests/support/seq_window_model.hpp, also the
// fuzz_seq_window target): never counted twice, never refused or confirmed unseen, bounded,
// and a snapshot restores to the same window.
TEST(SeqWindow, RandomOperationsKeepEveryDeliveryProperty) {
  for (std::uint32_t seed = 1; seed <= 16; ++seed) {
    std::mt19937 rng(seed);
    std::vector<std::uint8_t> ops(3 * 800);
    for (auto& b : ops) b = static_cast<std::uint8_t>(rng());
    EXPECT_EQ(postwatch::test::run_seq_window_ops(ops.data(), ops.size()), "") << "seed " << seed;
  }
}

// Found by the model above: while unanchored, the run bound gave up holes below the first seq
// seen without counting them; anchoring then confirmed across seqs the agent still held.
TEST(SeqWindow, HolesTheRunBoundGivesUpBeforeAnchoringAreCountedAsGaps) {
  SeqWindow w(100'000);
  EXPECT_EQ(w.accept(100'000), V::New);
  for (std::uint64_t s = 2; s <= 2 * (SeqWindow::kMaxRuns + 10); s += 2) EXPECT_EQ(w.accept(s), V::New);
  w.settle_through(0);  // the birth: the agent still holds everything
  ASSERT_GT(w.settled_through(), 1u) << "the run bound moved the base";
  std::uint64_t unseen = (w.settled_through() + 1) / 2;  // the odd seqs up to there
  EXPECT_EQ(w.gaps(), unseen) << "every seq confirmed unseen is counted as a gap";
}

TEST(SeqWindow, AnUrgentSeqAheadIsSeenWithoutMakingTheUnsentSeqsBelowItHoles) {
  // A broker-mode agent (the short window) with 10 000 events of backlog: its urgent event
  // 10 050 comes first, then the main lane from 101.
  SeqWindow w(1);
  for (std::uint64_t s = 1; s <= 100; ++s) w.accept(s);
  EXPECT_EQ(w.accept(10'050, SeqWindow::kWindow, /*ahead=*/true), V::New);
  EXPECT_EQ(w.highest(), 100u) << "an urgent seq does not move the in-order highest";
  EXPECT_EQ(w.pending_holes(), 0u) << "nothing below it is overdue";
  EXPECT_EQ(w.settled_through(), 100u);
  for (std::uint64_t s = 101; s <= 10'049; ++s) ASSERT_EQ(w.accept(s), V::New) << s;
  EXPECT_EQ(w.gaps(), 0u) << "the main lane's 9 949 seqs waited more than kWindow: none was given up";
  EXPECT_EQ(w.accept(10'050), V::Duplicate) << "the main lane's copy of the urgent event";
  EXPECT_EQ(w.settled_through(), 10'050u);
  EXPECT_EQ(w.accept(10'051), V::New);
  EXPECT_EQ(w.highest(), 10'051u);
}

TEST(SeqWindow, AnUrgentSeqFirstLeavesTheWindowToBeAnchored) {
  SeqWindow w(500);  // the first seq seen came on the urgent lane
  EXPECT_EQ(w.accept(500, SeqWindow::kKeptWindow, true), V::New);
  EXPECT_TRUE(w.any());
  EXPECT_EQ(w.settled_through(), 0u) << "unanchored: nothing confirmed";
  w.settle_through(99);  // the birth: it holds 100 onwards
  for (std::uint64_t s = 100; s < 500; ++s) ASSERT_EQ(w.accept(s, SeqWindow::kKeptWindow), V::New);
  EXPECT_EQ(w.settled_through(), 500u);
  EXPECT_EQ(w.gaps(), 0u);
}
