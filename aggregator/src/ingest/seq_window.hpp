// Duplicate and gap detection for one agent's sequence numbers in bounded memory:
// every seq below `base` is settled (seen, or given up as a gap); a fixed bitmap
// covers [base, base + kWindow).
#pragma once

#include <bitset>
#include <cstdint>

namespace postwatch::aggregator {

class SeqWindow {
 public:
  static constexpr std::uint64_t kWindow = 4096;

  enum class Verdict { New, Duplicate };

  // Seqs below `first` count as settled: an agent's birth says where it resumes.
  explicit SeqWindow(std::uint64_t first = 0) : base_(first) {}

  Verdict accept(std::uint64_t seq);

  std::uint64_t base() const { return base_; }
  std::uint64_t highest() const { return highest_; }
  std::uint64_t gaps() const { return gaps_; }  // seqs given up on as never received
  // Seqs in the window not seen yet, below the highest seen: in-flight or lost.
  std::uint64_t pending_holes() const;

 private:
  void slide_to(std::uint64_t new_base);
  std::uint64_t base_ = 0;
  std::uint64_t highest_ = 0;
  bool any_ = false;
  std::uint64_t gaps_ = 0;
  std::bitset<kWindow> seen_;  // bit (seq % kWindow) for seq in [base, base + kWindow)
};

}  // namespace postwatch::aggregator
