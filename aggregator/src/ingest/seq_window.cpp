#include "ingest/seq_window.hpp"

namespace postwatch::aggregator {

SeqWindow::Verdict SeqWindow::accept(std::uint64_t seq) {
  if (seq < base_) return Verdict::Duplicate;
  if (seq >= base_ + kWindow) slide_to(seq - kWindow + 1);
  auto bit = seq % kWindow;
  if (seen_.test(bit)) return Verdict::Duplicate;
  seen_.set(bit);
  if (!any_ || seq > highest_) highest_ = seq;
  any_ = true;
  advance_over_seen();
  return Verdict::New;
}

// Moves base over the contiguous prefix of seen seqs, so settled seqs leave the bitmap.
void SeqWindow::advance_over_seen() {
  while (seen_.test(base_ % kWindow)) {
    seen_.reset(base_ % kWindow);
    ++base_;
  }
}

void SeqWindow::slide_to(std::uint64_t new_base) {
  if (base_ < gap_floor_) {  // below the first seq seen: forget without counting gaps
    std::uint64_t stop = std::min(new_base, gap_floor_);
    if (stop - base_ >= kWindow) {
      seen_.reset();
      base_ = stop;
    }
    for (; base_ < stop; ++base_) seen_.reset(base_ % kWindow);
  }
  if (new_base <= base_) return;
  if (new_base - base_ >= kWindow) {
    gaps_ += kWindow - seen_.count() + (new_base - base_ - kWindow);
    seen_.reset();
    base_ = new_base;
    return;
  }
  for (; base_ < new_base; ++base_) {
    if (!seen_.test(base_ % kWindow)) ++gaps_;
    seen_.reset(base_ % kWindow);
  }
}

std::uint64_t SeqWindow::pending_holes() const {
  if (!any_ || highest_ < base_) return 0;
  std::uint64_t from = std::max(base_, gap_floor_);
  if (highest_ < from) return 0;
  std::uint64_t seen_from = 0;
  for (std::uint64_t s = from; s <= highest_; ++s) seen_from += seen_.test(s % kWindow);
  return highest_ - from + 1 - seen_from;
}

std::uint64_t SeqWindow::settled_through() const {
  if (!any_) return 0;
  if (base_ >= gap_floor_) return base_ - 1;  // accept() keeps base just past the contiguous prefix
  // Still keeping room below the first seq seen for older resends: what counts is the run of
  // seen seqs from the first one on.
  std::uint64_t s = gap_floor_;
  while (s < base_ + kWindow && seen_.test(s % kWindow)) ++s;
  return s - 1;
}

void SeqWindow::settle_through(std::uint64_t seq) {
  if (seq + 1 <= base_) return;
  gap_floor_ = std::max(gap_floor_, seq + 1);  // below the floor, slide_to forgets without counting
  slide_to(seq + 1);
  advance_over_seen();
  if (!any_ || highest_ < seq) highest_ = seq;
  any_ = true;
}

SeqWindow::Snapshot SeqWindow::snapshot() const {
  Snapshot s{base_, gap_floor_, highest_, gaps_, any_, {}};
  for (std::uint64_t off = 0; off < kWindow; ++off)
    if (seen_.test((base_ + off) % kWindow)) s.seen.push_back(base_ + off);
  return s;
}

SeqWindow SeqWindow::restore(const Snapshot& s) {
  SeqWindow w;
  w.base_ = s.base;
  w.gap_floor_ = s.gap_floor;
  w.highest_ = s.highest;
  w.gaps_ = s.gaps;
  w.any_ = s.any;
  for (auto seq : s.seen)
    if (seq >= s.base && seq < s.base + kWindow) w.seen_.set(seq % kWindow);
  return w;
}

}  // namespace postwatch::aggregator
