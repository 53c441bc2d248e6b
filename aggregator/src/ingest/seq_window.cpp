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
  // Advance base over the contiguous prefix so settled seqs leave the bitmap.
  while (seen_.test(base_ % kWindow)) {
    seen_.reset(base_ % kWindow);
    ++base_;
  }
  return Verdict::New;
}

void SeqWindow::slide_to(std::uint64_t new_base) {
  if (new_base - base_ >= kWindow) {
    gaps_ += kWindow - seen_.count() + (new_base - base_ - kWindow);
    seen_.reset();
    base_ = new_base;
    return;
  }
  while (base_ < new_base) {
    if (!seen_.test(base_ % kWindow)) ++gaps_;
    seen_.reset(base_ % kWindow);
    ++base_;
  }
}

std::uint64_t SeqWindow::pending_holes() const {
  if (!any_ || highest_ < base_) return 0;
  std::uint64_t span = highest_ - base_ + 1;
  return span - seen_.count();
}

}  // namespace postwatch::aggregator
