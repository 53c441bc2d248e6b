#include "ingest/seq_window.hpp"

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

TEST(SeqWindow, SettledThroughRunsFromTheFirstSeqSeenNotFromOne) {
  // An agent first seen at 5000 (its earlier seqs went to another aggregator, or were pruned):
  // the window keeps room below 5000 for older resends, but confirmation follows 5000 on.
  SeqWindow w(5000);
  w.accept(5000);
  w.accept(5001);
  EXPECT_LT(w.base(), 5000u);
  EXPECT_EQ(w.settled_through(), 5001u);
  w.accept(5003);
  EXPECT_EQ(w.settled_through(), 5001u);
  w.accept(4000);  // an older resend is still new, and does not move the confirmation back
  EXPECT_EQ(w.settled_through(), 5001u);
  w.accept(5002);
  EXPECT_EQ(w.settled_through(), 5003u);
  // The same after a snapshot round trip (another instance taking the agent over).
  EXPECT_EQ(SeqWindow::restore(w.snapshot()).settled_through(), 5003u);
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
