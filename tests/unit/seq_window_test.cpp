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
