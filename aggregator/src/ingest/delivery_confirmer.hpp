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

#include "ingest/agent_table.hpp"
#include "postwatch/catalogue.hpp"
#include "postwatch/signing.hpp"

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace postwatch::aggregator {

class BatchIngest;

struct ConfirmCounters {
  std::uint64_t confirms_published = 0;
  std::uint64_t resend_requests = 0;
  std::uint64_t settled_by_agent = 0;   // windows moved on because the agent had released the seqs
  std::uint64_t anchored = 0;           // agents first seen mid-stream, placed by their birth or heartbeat
  std::uint64_t dropped_given_up = 0;   // seqs given up at once: the agent's heartbeat says it dropped them
  std::uint64_t publish_failures = 0;   // Publish said no: retried on the next tick
  std::uint64_t waiting_for_store = 0;  // confirmations held back until the store commits (gauge)
  std::uint64_t key_notices = 0;        // confirmations sent again to announce a key rotation
};

// Where the store is: events handed over, and how many of them are committed.
struct StoreProgress {
  std::uint64_t handed_over = 0;
  std::uint64_t committed = 0;
};

class DeliveryConfirmer {
 public:
  // Hands one message to the outbound path; false when it could not (it is tried again).
  using Publish = std::function<bool(const std::string& topic, std::span<const std::uint8_t> payload, bool retained)>;
  // Whether this instance applies the post's events (always true unless clustered).
  using Owns = std::function<bool(std::uint32_t post)>;

  // `ingest` settles and gives up seqs in the agents' windows (and counts the gaps).
  DeliveryConfirmer(const IndicatorCatalogue& catalogue, AgentTable& agents, BatchIngest& ingest, Publish publish,
                    Owns owns = {});

  // Every confirm interval, on the io_context. `caught_up`: no backlog in front of ingest,
  // so a missing seq is really missing and not queued. Costs O(agents whose window moved,
  // that were heard from, or that have a hole or a disagreement with their heartbeat), not
  // O(agents): a quiet agent costs nothing. Ends with publish_committed().
  void tick(StoreProgress store, bool caught_up, std::int64_t now_ms);
  // Publishes the watermarks the store has made durable since they were taken. Cheap (the
  // oldest marks only): the service calls it more often than tick(), so a confirmation goes
  // out soon after the commit rather than a whole interval later.
  void publish_committed(StoreProgress store, std::int64_t now_ms);

  const ConfirmCounters& counters() const { return counters_; }
  // Signs every confirmation and resend request (docs/security.md): an enrolled agent obeys
  // only those. Null: unsigned (tests, tools).
  void set_signer(const SigningKey* key) { signer_ = key; }
  // The aggregator's key rotation (docs/security.md, "The aggregator's key"): every
  // confirmation and resend request carries the next key and the retired key ids. An agent
  // whose birth or heartbeat says it does not trust the next key yet, or still trusts a retired
  // one, gets its last confirmation again (at most every kNoticeGapMs): a quiet agent has no
  // other confirmation coming. Empty and empty: no rotation under way.
  void set_key_notice(std::optional<PublicKey> next, std::vector<std::string> retired_ids);
  static constexpr std::int64_t kNoticeGapMs = 10'000;
  // Whether the agent's last report says the notice has yet to reach it.
  bool needs_key_notice(const AgentRecord& r) const;

 private:
  // Watermarks taken at one tick, publishable once the store committed `handed_over` events.
  struct Mark {
    std::uint64_t handed_over = 0;
    std::vector<std::pair<AgentId, std::uint64_t>> through;  // at most one entry per agent
    std::uint64_t seq = 0;
  };
  // While the store lags (a full disk), ticks do not pile up marks: past this many, a tick's
  // watermarks join the newest mark, which then waits for the store's later count. So the
  // marks hold at most kMaxMarks entries per agent, whatever the length of the stall.
  static constexpr std::size_t kMaxMarks = 16;
  bool send(const AgentRecord& r, std::uint64_t through, std::uint64_t resend_from, std::int64_t now_ms);
  void request_resend(AgentRecord& r, std::uint64_t from, std::int64_t now_ms);
  void anchor(AgentRecord& r);
  void give_up_dropped(AgentRecord& r);
  // Step 1 of tick() for one agent; returns whether it must be looked at again next tick.
  bool take_watermark(AgentRecord& r, Mark& mark, bool caught_up, std::int64_t now_ms);
  // Step 3 of tick() for one agent; returns whether it must be looked at again next tick.
  bool compare_heartbeat(AgentRecord& r, bool caught_up, std::int64_t now_ms);
  // Step 4 of tick() for one agent heard from.
  void announce_keys(AgentRecord& r, std::int64_t now_ms);

  const IndicatorCatalogue& catalogue_;
  AgentTable& agents_;
  BatchIngest& ingest_;
  Publish publish_;
  Owns owns_;
  const SigningKey* signer_ = nullptr;
  std::vector<std::uint8_t> next_key_;  // 32 bytes, or empty
  std::string next_key_id_;
  std::vector<std::string> retired_ids_;
  std::deque<Mark> marks_;
  std::uint64_t mark_seq_ = 0;
  std::vector<AgentId> holes_;      // agents with a hole below later seqs: step 1 again next tick
  std::vector<AgentId> disagrees_;  // agents whose heartbeat says more than we have: step 3 again
  ConfirmCounters counters_;
};

}  // namespace postwatch::aggregator
