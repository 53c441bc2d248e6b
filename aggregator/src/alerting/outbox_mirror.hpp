// Clustered (docs/alerting.md, "In a cluster"): the outbox's pending notifications are mirrored
// in storage every instance reaches, so that when an instance dies the leader takes over what it
// had not delivered, and the dead instance, run again, does not send those a second time. The
// outbox works the same without one. Called from the outbox's worker thread only; any call may
// wait for a server round trip.
#pragma once

#include "alerting/outbox_table.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace postwatch::aggregator {

enum class MirrorState {
  Ours,       // mirrored, and still this instance's to deliver
  TakenOver,  // another instance took it over: drop this copy, do not deliver it
  Unknown,    // the mirror did not answer or holds nothing: deliver (a duplicate beats a loss)
};

class OutboxMirror {
 public:
  virtual ~OutboxMirror() = default;
  // Notifications are named by their notification_id ("<outbox file tag>-<row id>"), unique even
  // when an instance starts again on a fresh outbox file.
  // Mirrors notification `n` (new, or its entries changed).
  virtual MirrorState put(const std::string& notification_id, const PendingNotification& n) = 0;
  // Asked before each delivery attempt.
  virtual MirrorState state(const std::string& notification_id) = 0;
  // Delivered, replaced, or dropped after a takeover.
  virtual void remove(const std::string& notification_id) = 0;

  // Pending notifications of instances that are gone, while this instance leads (empty
  // otherwise). The caller stores each, then claims it with take(); when take() is refused
  // another instance got it first, and the caller deletes what it stored.
  struct Orphan {
    std::string key, owner;
    std::uint64_t revision = 0;
    PendingNotification notification;
  };
  virtual std::vector<Orphan> orphans() = 0;
  virtual bool take(const Orphan& orphan) = 0;
};

}  // namespace postwatch::aggregator
