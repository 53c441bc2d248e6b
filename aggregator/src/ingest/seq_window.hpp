// Duplicate and gap detection for one agent's sequence numbers in bounded memory: every
// seq below `base` is settled (seen, given up as a gap, or released by the agent); above
// it, the seen seqs are kept as a few runs. In order, there are none: base is the next seq.
//
// An agent first seen at seq N > 1 (a fresh store, a pruned one, events that went
// elsewhere) leaves the seqs below N unknown: they may be ones the agent still holds and
// will resend, or ones it released long ago. Until the window is anchored (the agent's
// birth or heartbeat says which seqs it no longer holds, settle_through), those seqs are
// accepted if they come, never counted as gaps, and nothing is confirmed: a confirmation
// across them would let the agent delete events the aggregator never had.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace postwatch::aggregator {

class SeqWindow {
 public:
  // A known hole is given up (counted as a gap) once a seq this far past it is seen: a
  // drop policy on the agent leaves holes that never fill, and they must not hold the
  // agent's confirmation back for ever.
  static constexpr std::uint64_t kWindow = 4096;
  // The same for an agent that keeps its events until the aggregator confirms them: it can
  // resend every hole, however many later seqs passed it (a broker that died, a backlog
  // drained at 100 000 events/s), and it says in its heartbeat which seqs it dropped
  // (DeliveryConfirmer gives those up at once). This backstop only frees a hole nobody can
  // fill, such as a record lost to a spool corrupted mid-file.
  static constexpr std::uint64_t kKeptWindow = std::uint64_t{1} << 20;
  // Memory bound: beyond this many separate runs of seen seqs, the lowest hole is given up.
  static constexpr std::size_t kMaxRuns = 1024;

  enum class Verdict { New, Duplicate };

  // `first_seen` is the first seq we saw from the agent; above 1, the window starts unanchored.
  explicit SeqWindow(std::uint64_t first_seen = 0)
      : base_(first_seen > 1 ? 1 : first_seen), first_seen_(first_seen), anchored_(first_seen <= 1) {}

  // `give_up_after`: how many later seqs a known hole may wait (kWindow or kKeptWindow).
  // `ahead`: the seq came on the agent's urgent lane, ahead of seqs it has not sent yet. It is
  // seen (a later copy is a duplicate) but does not move highest(): the unsent seqs below it are
  // neither holes to ask for nor reasons to give anything up, and a main-lane seq below it is not
  // reordered. The agent keeps few such seqs outstanding (well under kMaxRuns).
  Verdict accept(std::uint64_t seq, std::uint64_t give_up_after = kWindow, bool ahead = false);

  std::uint64_t base() const { return base_; }
  // The highest seq seen in order (on the main lane), or settled.
  std::uint64_t highest() const { return highest_; }
  bool any() const { return any_; }
  // Whether the seqs below the first one seen are resolved (see the top of the file).
  bool anchored() const { return anchored_; }
  std::uint64_t gaps() const { return gaps_; }       // seqs given up on as never received
  std::size_t runs() const { return runs_.size(); }  // separate runs of seen seqs above base
  // Known seqs not seen yet, below the highest seen: in flight or lost.
  std::uint64_t pending_holes() const;
  // The highest seq s such that every seq <= s is settled: seen, given up as a gap, or
  // released by the agent. 0 before anything was seen, and while unanchored. What the
  // aggregator confirms to the agent (DeliveryConfirmer), so a hole holds it back until it
  // is filled or given up.
  std::uint64_t settled_through() const;
  // The agent no longer holds any seq <= `seq` (its birth's first unacknowledged seq - 1,
  // or the confirmation its heartbeat reports): stop waiting for those, without counting
  // them as gaps, and expect every later seq. Anchors the window. A seq <= `seq` arriving
  // later is a duplicate.
  void settle_through(std::uint64_t seq);
  // The agent dropped every seq <= `seq` it still held (its overflow policy): what is not
  // seen is given up and counted as gaps, and a seq <= `seq` arriving later is a duplicate.
  // Only an anchored window that has seen something knows which unseen seqs were expected;
  // otherwise it does nothing. Returns how many gaps it counted.
  std::uint64_t give_up_through(std::uint64_t seq);

  // The whole window as plain values, so another aggregator instance can take over the
  // agent's dedupe exactly (docs/scale-out.md).
  struct Run {
    std::uint64_t lo = 0, hi = 0;
    bool operator==(const Run&) const = default;
  };
  struct Snapshot {
    std::uint64_t base = 0, first_seen = 0, highest = 0, gaps = 0, hold_until = 0;
    bool any = false, anchored = true;
    std::vector<Run> seen;  // the runs of seen seqs above base
    bool operator==(const Snapshot&) const = default;
  };
  Snapshot snapshot() const;
  static SeqWindow restore(const Snapshot& s);

 private:
  // Marks [lo, hi] seen (clamped to base), counting the seqs not seen before as gaps if asked.
  void mark_seen(std::uint64_t lo, std::uint64_t hi, bool count_gaps);
  void give_up_far_holes(std::uint64_t distance);
  const Run* run_holding(std::uint64_t seq) const;  // the run that holds `seq`, or null

  std::uint64_t base_ = 0;
  std::uint64_t first_seen_ = 0;  // unanchored: seqs in [base, first_seen) are neither expected nor gaps
  std::uint64_t highest_ = 0;
  std::uint64_t gaps_ = 0;
  std::uint64_t hold_until_ = 0;  // anchored with holes: none is given up before the highest seq reaches this
  bool any_ = false;
  bool anchored_ = true;
  std::vector<Run> runs_;  // sorted, disjoint, not touching each other or base
};

}  // namespace postwatch::aggregator
