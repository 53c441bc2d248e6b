#include "ingest/seq_window.hpp"

#include <algorithm>
#include <iterator>

namespace postwatch::aggregator {

SeqWindow::Verdict SeqWindow::accept(std::uint64_t seq, std::uint64_t give_up_after, bool ahead) {
  if (seq < base_) return Verdict::Duplicate;
  if (seq == base_ && runs_.empty()) {
    ++base_;  // in order: the common case, no runs at all
  } else {
    if (run_holding(seq)) return Verdict::Duplicate;
    mark_seen(seq, seq, false);
  }
  if (ahead) {
    any_ = true;
    return Verdict::New;  // nothing below it is overdue: see accept()'s comment
  }
  if (!any_ || seq > highest_) highest_ = seq;
  any_ = true;
  give_up_far_holes(give_up_after);
  if (runs_.size() > kMaxRuns) {
    // The lowest hole is given up and counted as a gap, even one below the first seq seen
    // while unanchored: once anchored, the window confirms across it, and an agent may still
    // hold those seqs, so giving them up must never be silent.
    mark_seen(base_, runs_.front().lo - 1, true);
  }
  return Verdict::New;
}

const SeqWindow::Run* SeqWindow::run_holding(std::uint64_t seq) const {
  auto after =
      std::upper_bound(runs_.begin(), runs_.end(), seq, [](std::uint64_t v, const Run& r) { return v < r.lo; });
  return after != runs_.begin() && std::prev(after)->hi >= seq ? &*std::prev(after) : nullptr;
}

void SeqWindow::mark_seen(std::uint64_t lo, std::uint64_t hi, bool count_gaps) {
  lo = std::max(lo, base_);
  if (lo > hi) return;
  // The runs that overlap [lo, hi] or touch it merge into one.
  auto first =
      std::lower_bound(runs_.begin(), runs_.end(), lo, [](const Run& r, std::uint64_t v) { return r.hi + 1 < v; });
  auto last = first;
  Run merged{lo, hi};
  std::uint64_t seen = 0;
  for (; last != runs_.end() && last->lo <= hi + 1; ++last) {
    std::uint64_t a = std::max(last->lo, lo), b = std::min(last->hi, hi);
    if (a <= b) seen += b - a + 1;
    merged.lo = std::min(merged.lo, last->lo);
    merged.hi = std::max(merged.hi, last->hi);
  }
  if (count_gaps) gaps_ += (hi - lo + 1) - seen;
  runs_.insert(runs_.erase(first, last), merged);
  if (runs_.front().lo == base_) {  // the prefix is complete: base moves past it
    base_ = runs_.front().hi + 1;
    runs_.erase(runs_.begin());
  }
}

void SeqWindow::give_up_far_holes(std::uint64_t distance) {
  if (highest_ < distance || highest_ < hold_until_) return;
  const std::uint64_t limit = highest_ - distance;  // known holes at or below are given up
  std::uint64_t from = anchored_ ? base_ : std::max(base_, first_seen_);
  if (from > limit) return;
  if (from == first_seen_ && !anchored_) {  // start after the run holding the first seq seen
    if (const Run* r = run_holding(from)) from = r->hi + 1;
    if (from > limit) return;
  }
  mark_seen(from, limit, true);
}

std::uint64_t SeqWindow::pending_holes() const {
  if (!any_) return 0;
  const std::uint64_t from = anchored_ ? base_ : std::max(base_, first_seen_);
  if (highest_ < from) return 0;
  std::uint64_t seen = 0;
  for (const Run& r : runs_) {
    std::uint64_t a = std::max(r.lo, from), b = std::min(r.hi, highest_);
    if (a <= b) seen += b - a + 1;
  }
  return highest_ - from + 1 - seen;
}

std::uint64_t SeqWindow::settled_through() const {
  if (!any_ || !anchored_ || base_ == 0) return 0;
  return base_ - 1;  // base is the first seq not settled
}

void SeqWindow::settle_through(std::uint64_t seq) {
  // Holes that anchoring makes known get a whole window of later seqs to be resent in,
  // however far ahead the highest seq already is.
  if (!anchored_) hold_until_ = highest_ + kWindow;
  anchored_ = true;
  if (seq < base_) return;
  auto kept = std::find_if(runs_.begin(), runs_.end(), [seq](const Run& r) { return r.hi > seq; });
  runs_.erase(runs_.begin(), kept);
  base_ = seq + 1;
  if (!runs_.empty() && runs_.front().lo <= base_) {  // on over what is already seen
    base_ = runs_.front().hi + 1;
    runs_.erase(runs_.begin());
  }
  if (!any_ || highest_ < seq) highest_ = seq;
  any_ = true;
}

std::uint64_t SeqWindow::give_up_through(std::uint64_t seq) {
  if (!any_ || !anchored_ || seq < base_) return 0;
  const std::uint64_t before = gaps_;
  mark_seen(base_, seq, true);
  highest_ = std::max(highest_, seq);
  return gaps_ - before;
}

SeqWindow::Snapshot SeqWindow::snapshot() const {
  return Snapshot{base_, first_seen_, highest_, gaps_, hold_until_, any_, anchored_, runs_};
}

SeqWindow SeqWindow::restore(const Snapshot& s) {
  SeqWindow w;
  w.base_ = s.base;
  w.first_seen_ = s.first_seen;
  w.highest_ = s.highest;
  w.gaps_ = s.gaps;
  w.hold_until_ = s.hold_until;
  w.any_ = s.any;
  w.anchored_ = s.anchored;
  for (const Run& r : s.seen) w.mark_seen(r.lo, r.hi, false);  // sorts and merges whatever came
  return w;
}

}  // namespace postwatch::aggregator
