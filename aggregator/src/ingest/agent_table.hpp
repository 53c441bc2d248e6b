// One record per agent: everything the aggregator knows about it — what ingest counted of
// its events (seq window), what it announced (birth, death, heartbeats) and what was
// confirmed to it — in one place, found by a small key (catalogue post index, agent name)
// rather than a "post/agent" string. BatchIngest, AgentPresence and DeliveryConfirmer are
// operations on these records; the table also lists which records changed since the
// confirmer last looked, so a tick costs O(agents that changed), not O(agents).
#pragma once

#include "ingest/clock_offset.hpp"
#include "ingest/seq_window.hpp"
#include "postwatch/catalogue.hpp"
#include "postwatch/event.hpp"

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace postwatch::aggregator {

using AgentId = std::uint32_t;

// Ingest's part: the agent's events.
struct AgentTrack {
  std::int64_t clock_skew_ms = 0;  // last batch: agent's sent_at minus our receive time
  SeqWindow seqs;
  std::int64_t last_event_ms = 0;
  std::uint64_t events = 0;
  std::uint64_t reordered = 0;
  std::uint32_t catalogue_version = 0;  // the last batch's (0: not said); this instance's own
};

// Presence's part: what the agent announced on its state and heartbeat topics.
struct AgentPresenceRecord {
  bool online = false;
  std::int64_t last_state_ms = 0;      // birth or death, agent's clock
  std::int64_t last_heartbeat_ms = 0;  // our clock
  std::int64_t born_at_ms = 0;         // when its last birth reached us, our clock: it counts as heard
  std::uint64_t births = 0;
  // From the birth; informational only: duplicates are judged by our own SeqWindow, since
  // the broker may still hold older queued events when a retained birth arrives.
  std::uint64_t first_unacked_seq = 0;
  bool awaits_confirmation = false;  // birth: it keeps events until confirmed, so it can resend them
  std::string agent_version, config_hash;
  std::uint32_t heartbeat_interval_s = 0;  // one-shot: how often it promised to send again (0: none)
  bool one_shot = false;                   // sends and leaves (emit): its death is not silence
  bool has_metrics = false;
  AgentMetrics metrics;
  // The aggregator keys it trusts, from its last birth or heartbeat (none: not enrolled, or an
  // agent from before the aggregator's key rotation).
  std::vector<std::string> aggregator_key_ids;
  // Fleet bundles in force and the last one's outcome (docs/fleet.md), from its last birth or
  // heartbeat; has_fleet false: an agent that takes no bundles.
  bool has_fleet = false;
  FleetReport fleet;
};

// The agent's clock: our estimate of its offset, and what it says of itself.
struct AgentClockRecord {
  ClockOffset offset;
  std::uint32_t epoch = 0;  // the batches' clock_epoch last seen
  bool epoch_seen = false;
  // Its own report (birth, heartbeat).
  ClockSync sync = ClockSync::Unknown;
  std::uint32_t jumps = 0;
  std::int64_t last_jump_ms = 0, last_jump_at_ms = 0;
  std::uint64_t events_corrected = 0;  // events whose times got a correction
};

// The confirmer's part (DeliveryConfirmer).
struct AgentConfirmState {
  std::string topic;           // the agent's confirm topic, built once
  std::uint64_t marked = 0;    // highest watermark taken into a mark
  std::uint64_t mark_seq = 0;  // the mark holding it (DeliveryConfirmer), and where in it
  std::uint32_t mark_index = 0;
  std::uint64_t published = 0;  // highest watermark published
  // Resend detection: the watermark and heartbeat time when a heartbeat first said more was sent.
  std::uint64_t stall_through = 0;
  std::int64_t stall_heartbeat_ms = 0;
  // The watermark below a hole at the last tick (later seqs arrived, this one did not).
  std::uint64_t hole_at = ~std::uint64_t{0};
  std::int64_t last_request_ms = 0;
  std::int64_t last_notice_ms = 0;  // the last key rotation notice sent to it
};

struct AgentRecord {
  AgentId id = 0;
  std::uint32_t post = 0;     // catalogue index
  std::string name;           // the agent's id, unique within its post
  bool has_events = false;    // ingest has seen a batch of it (or replayed one of its events)
  bool has_presence = false;  // a birth, death or heartbeat of it arrived
  AgentTrack events;
  AgentPresenceRecord presence;
  AgentConfirmState confirm;
  AgentClockRecord clock;
  bool moved = false, heard = false;  // in the table's change lists

  // Whether it keeps its events until confirmed, so a hole can wait for a resend however many
  // later seqs pass it. Its birth says; until one does, assume it does: waiting too long only
  // counts a gap late, giving up too early loses events.
  bool keeps_events() const { return presence.births == 0 || presence.awaits_confirmation; }
};

class AgentTable {
 public:
  explicit AgentTable(const IndicatorCatalogue& catalogue);

  // The agent `name` at catalogue post `post`, added on first sight.
  AgentRecord& get(std::uint32_t post, std::string_view name);
  AgentRecord* find(std::uint32_t post, std::string_view name);
  const AgentRecord* find(std::uint32_t post, std::string_view name) const;
  // "post/agent", as the API and the logs name agents; null when unknown.
  const AgentRecord* find(std::string_view key) const;
  AgentRecord* find(std::string_view key);
  std::string key(const AgentRecord& r) const;  // "post/agent"

  AgentRecord& operator[](AgentId id) { return records_[id]; }
  const AgentRecord& operator[](AgentId id) const { return records_[id]; }
  std::size_t size() const { return records_.size(); }
  auto begin() const { return records_.begin(); }
  auto end() const { return records_.end(); }
  // The agents of one catalogue post, in the order they were first seen.
  const std::vector<AgentId>& at_post(std::uint32_t post) const { return by_post_[post]; }

  // Change lists for DeliveryConfirmer: each id at most once until taken.
  void mark_moved(AgentRecord& r);  // its seq window changed
  void mark_heard(AgentRecord& r);  // a birth or heartbeat arrived
  std::vector<AgentId> take_moved();
  std::vector<AgentId> take_heard();

 private:
  struct Key {
    std::uint32_t post;
    std::string_view name;  // the record's own name: records never move
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    std::size_t operator()(const Key& k) const { return std::hash<std::string_view>{}(k.name) * 31 + k.post; }
  };

  const IndicatorCatalogue& catalogue_;
  std::deque<AgentRecord> records_;  // by id; a deque so records stay put as it grows
  std::unordered_map<Key, AgentId, KeyHash> index_;
  std::vector<std::vector<AgentId>> by_post_;
  std::vector<AgentId> moved_, heard_;
};

}  // namespace postwatch::aggregator
