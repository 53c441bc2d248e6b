// Duplicate and gap detection for one agent's sequence numbers in bounded memory:
// every seq below `base` is settled (seen, or given up as a gap); a fixed bitmap
// covers [base, base + kWindow).
#pragma once

#include <algorithm>
#include <bitset>
#include <cstdint>
#include <vector>

namespace postwatch::aggregator {

class SeqWindow {
 public:
  static constexpr std::uint64_t kWindow = 4096;

  enum class Verdict { New, Duplicate };

  // `first_seen` is the first seq we saw from the agent. Up to kWindow/2 older seqs may
  // still arrive (e.g. resent after a reconnect); never-seen seqs below first_seen are
  // not counted as gaps, since we cannot know whether they were ours to see.
  explicit SeqWindow(std::uint64_t first_seen = 0)
      : base_(first_seen - std::min(first_seen > 0 ? first_seen - 1 : 0, kWindow / 2)), gap_floor_(first_seen) {}

  Verdict accept(std::uint64_t seq);

  std::uint64_t base() const { return base_; }
  std::uint64_t highest() const { return highest_; }
  bool any() const { return any_; }
  std::uint64_t gaps() const { return gaps_; }  // seqs given up on as never received
  // Seqs in the window not seen yet, below the highest seen: in-flight or lost.
  std::uint64_t pending_holes() const;
  // The highest seq s such that every seq <= s is settled: seen, given up as a gap, or older
  // than the first seq seen. 0 before anything was seen. What the aggregator confirms to the
  // agent (DeliveryConfirmer), so a hole in the middle holds it back until it is filled or given up.
  std::uint64_t settled_through() const;
  // The agent no longer holds any seq <= `seq` (it was confirmed to it before, e.g. by an
  // earlier run whose refused events left holes in the store): stop waiting for those, without
  // counting them as gaps. A seq <= `seq` arriving later is a duplicate.
  void settle_through(std::uint64_t seq);

  // The whole window as plain values, so another aggregator instance can take over the
  // agent's dedupe exactly (docs/scale-out.md). `seen` lists the seqs seen at or above base.
  struct Snapshot {
    std::uint64_t base = 0, gap_floor = 0, highest = 0, gaps = 0;
    bool any = false;
    std::vector<std::uint64_t> seen;
  };
  Snapshot snapshot() const;
  static SeqWindow restore(const Snapshot& s);

 private:
  void slide_to(std::uint64_t new_base);
  void advance_over_seen();
  std::uint64_t base_ = 0;
  std::uint64_t gap_floor_ = 0;
  std::uint64_t highest_ = 0;
  bool any_ = false;
  std::uint64_t gaps_ = 0;
  std::bitset<kWindow> seen_;  // bit (seq % kWindow) for seq in [base, base + kWindow)
};

}  // namespace postwatch::aggregator
