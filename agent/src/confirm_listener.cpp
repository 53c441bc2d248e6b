#include "confirm_listener.hpp"

#include "postwatch/agent/confirm_tracker.hpp"

#include "postwatch/wire_codec.hpp"

#include <spdlog/spdlog.h>

#include <cstdint>
#include <mutex>
#include <optional>
#include <span>
#include <utility>

namespace postwatch::agent {

ConfirmListener::ConfirmListener(const AgentConfig& config, AgentShared& shared, AgentIdentity& identity,
                                 InflightPublisher& sender, std::string confirm_topic)
    : config_(config),
      shared_(shared),
      identity_(identity),
      sender_(sender),
      confirm_topic_(std::move(confirm_topic)) {}

void ConfirmListener::on_confirm(const std::string& payload) {
  const std::span<const std::uint8_t> bytes{reinterpret_cast<const std::uint8_t*>(payload.data()), payload.size()};
  DeliveryConfirm c;
  auto err = decode_delivery_confirm(bytes, c);
  std::string problem;
  if (err != DecodeError::None)
    problem = std::string("ignored a delivery confirmation on ") + confirm_topic_ + ": " + std::string(to_string(err));
  else if (c.agent_id != config_.agent_id || c.post_id != config_.post_id)
    problem = "ignored a delivery confirmation on " + confirm_topic_ + " for agent " + c.post_id + "/" + c.agent_id +
              ", not this one (" + config_.post_id + "/" + config_.agent_id + ")";
  else if (auto why = identity_.confirm_problem(c, bytes); !why.empty())
    problem = "ignored a delivery confirmation on " + confirm_topic_ + ": " + why + "; nothing is released";
  if (!problem.empty()) {
    {
      std::lock_guard lk(shared_.mu);
      shared_.counters.confirm_rejected += 1;
    }
    note_problem(problem);
    return;
  }
  identity_.note_key_notice(c);  // verified: its rotation notice, if any, is the aggregator's
  sender_.aggregator_dictionary(c.batch_dictionary);
  std::uint64_t issued_through = 0;
  ConfirmTracker::Confirmed outcome;
  {
    std::lock_guard lk(shared_.mu);
    issued_through = shared_.backlog->next_seq() - 1;
    outcome = shared_.confirms.confirmed(c.through_seq, c.resend_from, issued_through);
    if (outcome.refused) shared_.counters.confirm_rejected += 1;
    shared_.counters.confirmed_through_seq = shared_.confirms.confirmed_through();
    if (outcome.resend_requested) shared_.counters.resend_requests += 1;
  }
  if (outcome.first_refusal)
    shared_.log->warn(
        "the aggregator confirms seq {} but this spool has only issued up to {}; was the spool reset? Nothing is "
        "released on this confirmation. A spool that starts over needs a new agent_id (docs/agent.md, \"Sequence "
        "numbers\")",
        c.through_seq, issued_through);
  if (!outcome.refused) shared_.cv.notify_all();
}

// Through apply_confirmations, like the aggregator's own resend request.
bool ConfirmListener::resend_if_stalled(std::chrono::steady_clock::time_point now) {
  std::optional<ConfirmTracker::StallResend> resend;
  {
    std::lock_guard lk(shared_.mu);
    const std::uint64_t window = std::uint64_t{config_.max_inflight_batches} * config_.batch_max_events;
    resend = shared_.confirms.stalled(now, shared_.backlog->first_seq(), shared_.backlog->next_seq(),
                                      shared_.counters.sent_through_seq, window);
    if (!resend) return false;
    shared_.counters.stall_resends += 1;
  }
  shared_.log->info(
      "no confirmation for {} s of events the broker acknowledged through seq {}; sending again from seq {} "
      "(the aggregator drops what it has)",
      resend->waited.count() / 1000, resend->through, resend->from);
  return true;
}

void ConfirmListener::note_problem(const std::string& what) {
  {
    std::lock_guard lk(shared_.mu);
    if (problems_logged_.size() >= 32 || !problems_logged_.insert(what).second) return;
  }
  shared_.log->warn("{}", what);
}

}  // namespace postwatch::agent
