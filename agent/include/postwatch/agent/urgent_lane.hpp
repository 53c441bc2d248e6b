// The urgent lane (docs/agent.md, "Urgent readings"): events the catalogue marks urgent jump the
// spool's queue. Every event is in the spool as before, in one seq space; this keeps a copy of the
// urgent ones so the publisher can send them ahead of the main lane's cursor, in their own
// batches (BatchLane Urgent), and then skip them when the main lane reaches their seqs.
//
// Pure and single-threaded: the agent calls it under its lock, tests call it directly. A restart
// forgets it: urgent events still in the spool then go in seq order, like any other.
#pragma once

#include "postwatch/event.hpp"

#include <cstddef>
#include <cstdint>
#include <deque>
#include <set>
#include <vector>

namespace postwatch::agent {

class UrgentLane {
 public:
  // At most this many urgent seqs ahead of the main lane at once (waiting, in flight or sent).
  // Each can be a separate run of seqs in the aggregator's window (SeqWindow::kMaxRuns is 1024);
  // past it, an urgent event simply waits its turn in the spool.
  static constexpr std::size_t kMaxAhead = 256;

  // A newly accepted urgent event (with its seq). False when the lane is full.
  bool offer(const IndicatorEvent& e);

  // Up to `max` waiting events at or beyond `horizon` (the main lane will not reach the ones below
  // within its next batch), oldest first; they are in flight until sent() or returned().
  std::vector<IndicatorEvent> take(std::uint64_t horizon, std::size_t max);
  // The broker acknowledged a batch take() gave: the main lane skips these seqs.
  void sent(const std::vector<IndicatorEvent>& batch);
  // The batch did not make it (a lost connection): back to the front of the queue.
  void returned(std::vector<IndicatorEvent> batch);

  // Whether the main lane skips `seq`: the urgent lane already delivered it to the broker.
  bool skips(std::uint64_t seq) const { return sent_.count(seq) != 0; }
  // The main lane's cursor moved to `cursor`: what lies below it is the main lane's now.
  void passed(std::uint64_t cursor);
  // The main lane goes back over seqs (a resend request, a reconnect): it sends all of them
  // again, so nothing is skipped any more. Waiting events stay waiting.
  void forget_sent() { sent_.clear(); }

  std::size_t waiting() const { return waiting_.size(); }
  std::size_t ahead() const { return waiting_.size() + in_flight_ + sent_.size(); }
  std::uint64_t overflowed() const { return overflowed_; }  // urgent events left to the main lane

 private:
  std::deque<IndicatorEvent> waiting_;  // in seq order
  std::size_t in_flight_ = 0;
  std::set<std::uint64_t> sent_;
  std::uint64_t overflowed_ = 0;
};

}  // namespace postwatch::agent
