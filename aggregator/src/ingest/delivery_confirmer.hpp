// End-to-end delivery confirmation (docs/wire-format.md, "Delivery confirmation"): tells
// each agent which of its events the aggregator holds durably, so the agent deletes them
// from its spool only then, not on the broker's PUBACK. A broker that dies with messages
// held only in memory then costs a resend, not the events.
//
// A confirmation goes out only once the store has committed every event that had been
// handed to it when the agent's watermark was taken, so it never runs ahead of the disk.
// It also asks an agent to resend what we miss while it still holds it (a broker that lost
// messages, an aggregator that crashed before committing them): when a hole below later seqs
// outlives a tick, or two heartbeats in a row say the broker acknowledged seqs we never got
// while the watermark stood still. And it stops waiting for seqs an agent says it no longer
// holds: below the confirmation it reports, the window settles; below the oldest seq it still
// holds (held_from_seq), what never came is given up as gaps, since the agent dropped it.
// Otherwise a hole of an agent that keeps its events waits for the resend
// (SeqWindow::kKeptWindow is only a backstop).
#pragma once

#include "postwatch/catalogue.hpp"

#include <cstdint>
#include <deque>
#include <functional>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace postwatch::aggregator {

class BatchIngest;
class AgentPresence;
struct AgentTrack;
struct AgentPresenceRecord;

struct ConfirmCounters {
  std::uint64_t confirms_published = 0;
  std::uint64_t resend_requests = 0;
  std::uint64_t settled_by_agent = 0;   // windows moved on because the agent had released the seqs
  std::uint64_t anchored = 0;           // agents first seen mid-stream, placed by their birth or heartbeat
  std::uint64_t dropped_given_up = 0;   // seqs given up at once: the agent's heartbeat says it dropped them
  std::uint64_t publish_failures = 0;   // not connected: retried on the next tick
  std::uint64_t waiting_for_store = 0;  // confirmations held back until the store commits (gauge)
};

// Where the store is: events handed over, and how many of them are committed.
struct StoreProgress {
  std::uint64_t handed_over = 0;
  std::uint64_t committed = 0;
};

class DeliveryConfirmer {
 public:
  // Publishes one message; false when it could not (not connected).
  using Publish = std::function<bool(const std::string& topic, std::span<const std::uint8_t> payload, bool retained)>;
  // Whether this instance applies the post's events (always true unless clustered).
  using Owns = std::function<bool(std::uint32_t post)>;

  DeliveryConfirmer(const IndicatorCatalogue& catalogue, Publish publish, Owns owns = {});

  // Every confirm interval, on the io_context. `caught_up`: no backlog in front of ingest,
  // so a missing seq is really missing and not queued. Costs O(agents whose window moved,
  // that were heard from, or that have a hole or a disagreement with their heartbeat), not
  // O(agents): a quiet agent costs nothing. Ends with publish_committed().
  void tick(BatchIngest& ingest, AgentPresence& presence, StoreProgress store, bool caught_up, std::int64_t now_ms);
  // Publishes the watermarks the store has made durable since they were taken. Cheap (the
  // oldest marks only): the service calls it more often than tick(), so a confirmation goes
  // out soon after the commit rather than a whole interval later.
  void publish_committed(StoreProgress store, std::int64_t now_ms);

  const ConfirmCounters& counters() const { return counters_; }
  // The last confirmation published to "post/agent" (0 if none).
  std::uint64_t confirmed_through(const std::string& key) const;

 private:
  struct AgentConfirm {
    std::uint32_t post = 0;
    std::string agent, topic;
    std::uint64_t marked = 0;     // highest watermark taken into a mark
    std::uint64_t published = 0;  // highest watermark published
    // Resend detection: the watermark and heartbeat time when a heartbeat first said more was sent.
    std::uint64_t stall_through = 0;
    std::int64_t stall_heartbeat_ms = 0;
    // The watermark below a hole at the last tick (later seqs arrived, this one did not).
    std::uint64_t hole_at = ~std::uint64_t{0};
    std::int64_t last_request_ms = 0;
  };
  // Watermarks taken at one tick, publishable once the store committed `handed_over` events.
  struct Mark {
    std::uint64_t handed_over = 0;
    std::vector<std::pair<AgentConfirm*, std::uint64_t>> through;
  };
  AgentConfirm& entry(const std::string& key, std::uint32_t post, std::string_view agent);
  bool send(AgentConfirm& a, std::uint64_t through, std::uint64_t resend_from, std::int64_t now_ms);
  void request_resend(AgentConfirm& a, std::uint64_t from, std::int64_t now_ms);
  void anchor(BatchIngest& ingest, const AgentPresence& presence, const std::string& key);
  void give_up_dropped(BatchIngest& ingest, const AgentPresence& presence, const std::string& key,
                       const AgentTrack& track);
  // Step 1 of tick() for one agent; returns whether it must be looked at again next tick.
  bool take_watermark(BatchIngest& ingest, const AgentPresence& presence, const std::string& key, Mark& mark,
                      bool caught_up, std::int64_t now_ms);
  // Step 3 of tick() for one agent; returns whether it must be looked at again next tick.
  bool compare_heartbeat(BatchIngest& ingest, const AgentPresenceRecord& rec, const std::string& key, bool caught_up,
                         std::int64_t now_ms);

  const IndicatorCatalogue& catalogue_;
  Publish publish_;
  Owns owns_;
  std::unordered_map<std::string, AgentConfirm> agents_;  // "post/agent"; nodes stay put for Mark
  std::deque<Mark> marks_;
  std::vector<std::string> holes_;      // agents with a hole below later seqs: step 1 again next tick
  std::vector<std::string> disagrees_;  // agents whose heartbeat says more than we have: step 3 again
  ConfirmCounters counters_;
};

}  // namespace postwatch::aggregator
