// The agent's side of the end-to-end confirmation (delivery.confirm: aggregator; docs/agent.md,
// "Delivery"): events stay in the spool until the aggregator confirms them. This keeps what
// the aggregator confirmed, what it (or the agent itself) asked to be sent again, and when a
// confirmation is overdue (ConfirmStall).
//
// Pure and single-threaded: no broker, no clock reads (time is passed in). The agent calls it
// under its lock, from Paho's thread (confirmations) and the publisher's (the rest); tests and
// fuzz_confirm_tracker call it directly. Seqs are the spool's: [first, next) is what it holds,
// `sent_through` the highest the broker acknowledged on the main lane. 0 is never a seq.
#pragma once

#include "postwatch/agent/confirm_stall.hpp"

#include <chrono>
#include <cstdint>
#include <optional>

namespace postwatch::agent {

class ConfirmTracker {
 public:
  using Clock = ConfirmStall::Clock;

  // What a verified confirmation did.
  struct Confirmed {
    // It names seqs this spool never issued (a wiped or replaced spool starting at 1 again):
    // nothing is released on it, and its resend request is ignored.
    bool refused = false;
    bool first_refusal = false;     // the first such since start: worth a warning
    bool resend_requested = false;  // it carried a resend request, now pending
  };

  // An aggregator's resend request, or the agent's own, taken by the send loop.
  struct Resend {
    std::uint64_t from = 0;    // the seq asked for
    std::uint64_t cursor = 0;  // where the main lane goes on from: the spool's first seq at the lowest
  };

  // A confirmation overdue: the last window is sent again from `from`.
  struct StallResend {
    std::uint64_t from = 0;
    std::uint64_t through = 0;            // the highest seq the broker acknowledged
    std::chrono::milliseconds waited{0};  // how long no confirmation came
  };

  ConfirmTracker(std::chrono::milliseconds stall_first, std::chrono::milliseconds stall_longest)
      : stall_(stall_first, stall_longest) {}

  // A verified confirmation through `through_seq`, with the aggregator's resend request (0:
  // none). `issued_through` is the highest seq the spool has issued (its next seq - 1).
  Confirmed confirmed(std::uint64_t through_seq, std::uint64_t resend_from, std::uint64_t issued_through);

  // The highest seq confirmed that this spool issued (0: none yet).
  std::uint64_t confirmed_through() const { return confirmed_through_; }

  // A resend from `from` (the lowest pending request wins). 0 asks for nothing.
  void request_resend(std::uint64_t from);
  // Agent::resend_from: from `seq`, or the spool's first seq if it no longer holds `seq`.
  // The seq the resend starts at, or 0 when the spool holds nothing from there.
  std::uint64_t request_resend_within(std::uint64_t seq, std::uint64_t first, std::uint64_t next);

  // The seq to release the spool through, if a confirmation releases anything it holds.
  std::optional<std::uint64_t> releasable(std::uint64_t first, std::uint64_t next) const;
  // A confirmation that releases events, or a resend request, is waiting for the send loop.
  bool pending(std::uint64_t first, std::uint64_t next) const;

  // Takes the pending resend request. Only a request for seqs the main lane already sent
  // (below `cursor`) moves it back; a request for seqs not yet sent needs nothing.
  std::optional<Resend> take_resend(std::uint64_t cursor, std::uint64_t first);

  // Each pass of the send loop while connected: when events the broker acknowledged wait too
  // long for a confirmation, the last `window_events` through `sent_through` are asked for
  // again (what the aggregator misses below them shows as a hole, and it asks for that itself).
  std::optional<StallResend> stalled(Clock::time_point now, std::uint64_t first, std::uint64_t next,
                                     std::uint64_t sent_through, std::uint64_t window_events);

  // A new connection: the main lane starts again from the spool's first seq, so a pending
  // resend is moot, and the stall wait starts over.
  void reconnected();

 private:
  std::uint64_t confirmed_through_ = 0;
  std::uint64_t resend_from_ = 0;  // 0: no request pending
  // A confirmation of seqs this spool never issued; refused again when it comes back (retained,
  // on every reconnect) after the spool has issued that many.
  std::uint64_t refused_through_ = 0;
  ConfirmStall stall_;
};

}  // namespace postwatch::agent
