#include "postwatch/agent/confirm_tracker.hpp"

#include <algorithm>
#include <utility>

namespace postwatch::agent {

ConfirmTracker::Confirmed ConfirmTracker::confirmed(std::uint64_t through_seq, std::uint64_t resend_from,
                                                    std::uint64_t issued_through) {
  Confirmed c;
  if (through_seq > issued_through || (refused_through_ != 0 && through_seq == refused_through_)) {
    c.refused = true;
    c.first_refusal = refused_through_ == 0;
    if (through_seq > issued_through) refused_through_ = through_seq;
    return c;
  }
  confirmed_through_ = std::max(confirmed_through_, through_seq);
  if (resend_from != 0) {
    c.resend_requested = true;
    request_resend(resend_from);
  }
  return c;
}

void ConfirmTracker::request_resend(std::uint64_t from) {
  if (from != 0 && (resend_from_ == 0 || from < resend_from_)) resend_from_ = from;
}

std::uint64_t ConfirmTracker::request_resend_within(std::uint64_t seq, std::uint64_t first, std::uint64_t next) {
  const std::uint64_t from = std::max(seq, first);
  if (from >= next) return 0;
  request_resend(from);
  return from;
}

std::optional<std::uint64_t> ConfirmTracker::releasable(std::uint64_t first, std::uint64_t next) const {
  if (confirmed_through_ >= first && confirmed_through_ < next) return confirmed_through_;
  return std::nullopt;
}

bool ConfirmTracker::pending(std::uint64_t first, std::uint64_t next) const {
  return releasable(first, next).has_value() || resend_from_ != 0;
}

std::optional<ConfirmTracker::Resend> ConfirmTracker::take_resend(std::uint64_t cursor, std::uint64_t first) {
  const std::uint64_t from = std::exchange(resend_from_, 0);
  if (from == 0 || from >= cursor) return std::nullopt;
  return Resend{from, std::max(from, first)};
}

std::optional<ConfirmTracker::StallResend> ConfirmTracker::stalled(Clock::time_point now, std::uint64_t first,
                                                                   std::uint64_t next, std::uint64_t sent_through,
                                                                   std::uint64_t window_events) {
  const bool waiting = first < next && sent_through >= first;
  if (!stall_.due(now, waiting, confirmed_through_)) return std::nullopt;
  // Only the last window's worth: a whole spool sent again every few minutes while the
  // aggregator is away would pile copies of hours of backlog on the broker.
  StallResend r;
  r.through = sent_through;
  r.from = std::max(first, sent_through >= window_events ? sent_through - window_events + 1 : std::uint64_t{1});
  r.waited = stall_.waited();
  request_resend(r.from);
  return r;
}

void ConfirmTracker::reconnected() {
  resend_from_ = 0;
  stall_.reset();
}

}  // namespace postwatch::agent
