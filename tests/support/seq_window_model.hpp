// SeqWindow beside a plain model (every seq seen, in a std::set), checking after every step
// the properties delivery rests on. Shared by the randomised unit test and fuzz_seq_window.
//
//  - never counted twice: a seq seen before is a duplicate;
//  - never refused unseen: a new seq is a duplicate only once settled or given up as a gap
//    (give_up_after later seqs seen, the runs full, or give_up_through);
//  - never confirmed unseen: every seq up to settled_through() was seen, released by the
//    agent (settle_through) or counted as a gap; nothing while unanchored;
//  - bounded: at most kMaxRuns runs;
//  - a snapshot restores to the same window (what cluster hand-over and partials rely on).
#pragma once

#include "ingest/seq_window.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <set>
#include <string>

namespace postwatch::test {

class SeqWindowModelCheck {
 public:
  using SeqWindow = aggregator::SeqWindow;

  // `give_up_after`: what BatchIngest passes for the agent (kWindow, or kKeptWindow).
  explicit SeqWindowModelCheck(std::uint64_t give_up_after = SeqWindow::kWindow) : give_up_after_(give_up_after) {}

  // Empty when every property holds; otherwise the first one broken.
  std::string accept(std::uint64_t seq) {
    if (!started_) {  // as BatchIngest does: the window starts at the first seq seen
      window_ = SeqWindow(seq);
      started_ = true;
    }
    const bool seen_before = seen_.count(seq) > 0;
    const std::uint64_t base_before = window_.base(), highest_before = window_.highest();
    if (window_.runs() >= SeqWindow::kMaxRuns) runs_were_full_ = true;
    auto verdict = window_.accept(seq, give_up_after_);
    if (verdict == SeqWindow::Verdict::New) {
      if (seen_before) return "seq " + std::to_string(seq) + " counted twice";
      seen_.insert(seq);
    } else if (!seen_before && seq >= base_before && seq + give_up_after_ > highest_before && !runs_were_full_ &&
               seq > given_up_through_) {
      // Refusing it is right only once it is settled, or given up: give_up_after later seqs
      // seen, the lowest hole when the runs were full, or dropped by the agent.
      return "unseen seq " + std::to_string(seq) + " refused above base " + std::to_string(base_before);
    }
    return check();
  }

  std::string settle_through(std::uint64_t seq) {
    if (!started_) return "";  // BatchIngest settles only agents it has seen
    window_.settle_through(seq);
    released_through_ = std::max(released_through_, seq);
    return check();
  }

  // The agent dropped what it held through `seq`: the unseen ones must be counted as gaps.
  std::string give_up_through(std::uint64_t seq) {
    if (!started_) return "";
    const std::uint64_t gaps_before = window_.gaps();
    const std::uint64_t counted = window_.give_up_through(seq);
    if (window_.gaps() - gaps_before != counted) return "give_up_through returned another count than it added";
    if (window_.anchored()) given_up_through_ = std::max(given_up_through_, seq);
    return check();
  }

  // Replaces the window by its restored snapshot (a hand-over), which must change nothing.
  std::string round_trip() {
    auto before = window_.snapshot();
    window_ = SeqWindow::restore(before);
    auto after = window_.snapshot();
    if (!(before == after)) return "snapshot does not restore to the same window";
    return check();
  }

  const SeqWindow& window() const { return window_; }

 private:
  // How many seen seqs are <= x, for an x that only grows; new seqs always arrive above it
  // (a new seq is at or above base, and base is past both settled_through and every release).
  struct SeenBelow {
    std::uint64_t x = 0, count = 0;
    std::uint64_t at(const std::set<std::uint64_t>& seen, std::uint64_t to) {
      if (to > x) {
        count += static_cast<std::uint64_t>(std::distance(seen.upper_bound(x), seen.upper_bound(to)));
        x = to;
      }
      return count;
    }
  };

  std::string check() {
    const std::uint64_t through = window_.settled_through();
    if (!window_.anchored() && through != 0) return "unanchored window confirms " + std::to_string(through);
    if (through > released_through_) {
      // Seqs in (released_through, through] neither seen nor given up would be a loss.
      const std::uint64_t seen_in =
          seen_below_through_.at(seen_, through) - seen_below_released_.at(seen_, released_through_);
      const std::uint64_t unseen = (through - released_through_) - seen_in;
      if (unseen > window_.gaps())
        return "settled through " + std::to_string(through) + " with " + std::to_string(unseen) +
               " unseen seq(s) but only " + std::to_string(window_.gaps()) + " counted as gaps";
    }
    if (!seen_.empty() && window_.highest() < *seen_.rbegin()) return "highest is below a seen seq";
    if (window_.runs() > SeqWindow::kMaxRuns) return "more runs than kMaxRuns";
    return "";
  }

  SeqWindow window_;
  std::uint64_t give_up_after_;
  std::uint64_t given_up_through_ = 0;  // the highest give_up_through on an anchored window
  bool started_ = false;
  std::set<std::uint64_t> seen_;
  std::uint64_t released_through_ = 0;  // the highest settle_through so far
  bool runs_were_full_ = false;         // from then on, a low hole may have been given up
  SeenBelow seen_below_through_, seen_below_released_;
};

// Reads operations from bytes (three per operation) and applies them to a SeqWindowModelCheck:
// in-order seqs with small skips, resends of older seqs, jumps ahead, bursts that push the
// window on, releases and drops by the agent, and hand-over round trips; as for an agent that
// releases on PUBACK, or (the first byte's bit 6) one that keeps its events until confirmed.
// Empty, or the first property broken with the operation that broke it.
inline std::string run_seq_window_ops(const std::uint8_t* data, std::size_t size) {
  using aggregator::SeqWindow;
  SeqWindowModelCheck model(size > 0 && (data[0] & 0x40) ? SeqWindow::kKeptWindow : SeqWindow::kWindow);
  std::uint64_t next = 0;  // the agent's next seq
  for (std::size_t i = 0; i + 3 <= size; i += 3) {
    const unsigned op = data[i] % 8;
    const std::uint64_t arg = data[i + 1] | (static_cast<std::uint64_t>(data[i + 2]) << 8);
    if (next == 0) next = (data[i] & 0x80) ? 1 + arg : 1;  // first seen at 1, or mid-stream
    std::string broken;
    std::string what;
    switch (op) {
      case 0:
      case 1:
      case 2:  // in order, now and then skipping a few (lost, or still in flight)
        what = "accept " + std::to_string(next);
        broken = model.accept(next);
        next += 1 + (arg % 4 == 0 ? (arg >> 2) % 8 : 0);
        break;
      case 3: {  // a resend of an older seq (a duplicate, or one that fills a hole)
        const std::uint64_t seq = next - 1 - arg % next;
        what = "resend " + std::to_string(seq);
        broken = model.accept(seq);
        break;
      }
      case 4:  // a jump ahead: a whole stretch missing
        next += arg;
        what = "jump to " + std::to_string(next);
        broken = model.accept(next++);
        break;
      case 5: {  // the agent says it no longer holds anything up to here
        const std::uint64_t seq = next - 1 - arg % next;
        what = "settle through " + std::to_string(seq);
        broken = model.settle_through(seq);
        break;
      }
      case 6:
        if (arg & 1) {
          what = "round trip";
          broken = model.round_trip();
        } else {  // the agent's heartbeat: it dropped everything it held up to here
          const std::uint64_t seq = next - 1 - (arg >> 1) % next;
          what = "give up through " + std::to_string(seq);
          broken = model.give_up_through(seq);
        }
        break;
      default: {  // a burst long enough to push the window past older holes; every other seq
                  // (a hole each) fills the runs up to their bound
        const std::uint64_t stride = (arg & 3) == 1 ? 2 : 1;  // rarely: a full window costs a memmove a seq
        what = "burst from " + std::to_string(next) + " by " + std::to_string(stride);
        for (std::uint64_t n = 0; n < 32 * (1 + (arg >> 2) % 64) && broken.empty(); ++n, next += stride)
          broken = model.accept(next);
        break;
      }
    }
    if (!broken.empty()) return "operation " + std::to_string(i / 3) + " (" + what + "): " + broken;
  }
  return "";
}

}  // namespace postwatch::test
