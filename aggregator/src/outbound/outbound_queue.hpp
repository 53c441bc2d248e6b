// Everything the aggregator publishes waits here, in priority order, until the MQTT client
// has room for it (docs/aggregator.md, "What the aggregator publishes"). Pure and
// single-threaded: MqttOutbox drives it from the io_context.
//
// Two kinds of message:
//  - retained state (a delivery confirmation, a goal or pillar snapshot, a cluster partial):
//    only the newest value per topic waits, so the queue holds O(topics) whatever the rate of
//    ticks; a value that failed goes back only if nothing newer was queued or sent since;
//  - notices (alarms, resend requests): each one waits in order, up to `max_notices`; past
//    that a notice is dropped and counted (never silently).
// A message taken is "in flight" until completed(); at most `window` are in flight at once.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace postwatch::aggregator {

// Higher first: an alarm or a resend request never waits behind a confirmation, nor a
// confirmation (which frees an agent's spool) behind a snapshot.
enum class OutboundPriority : std::uint8_t { Urgent = 0, Confirm = 1, Snapshot = 2 };
inline constexpr std::size_t kOutboundPriorities = 3;
std::string_view to_string(OutboundPriority p);

struct OutboundMessage {
  std::string topic, payload;
  bool retained = false;
  OutboundPriority priority = OutboundPriority::Snapshot;
};

enum class OutboundDrop : std::uint8_t {
  Overflow = 0,  // more than max_notices notices waiting
  Shutdown = 1,  // still waiting when the aggregator stopped
};
inline constexpr std::size_t kOutboundDropReasons = 2;
std::string_view to_string(OutboundDrop d);

struct OutboundCounters {
  std::array<std::uint64_t, kOutboundPriorities> queued{};     // push() calls
  std::array<std::uint64_t, kOutboundPriorities> published{};  // acknowledged by the broker
  std::uint64_t coalesced = 0;  // retained values replaced by a newer one before they went out
  std::uint64_t retried = 0;    // failed (connection lost, timed out) and queued again
  std::array<std::uint64_t, kOutboundDropReasons> dropped{};
  std::uint64_t dropped_total() const;
};

struct OutboundLimits {
  std::size_t window = 256;           // messages in flight at once (see MqttOutbox for why)
  std::size_t max_notices = 100'000;  // notices waiting; retained state is bounded by its topics
};

class OutboundQueue {
 public:
  explicit OutboundQueue(OutboundLimits limits = {});

  void push(OutboundMessage m);

  struct Ticket {
    std::uint64_t id = 0;
    const OutboundMessage* message = nullptr;  // valid until completed(id)
  };
  // The next message by priority, if the window has room; it is in flight until completed().
  std::optional<Ticket> take();
  // The broker acknowledged it (ok), or it failed: a failed notice goes back to the front of
  // its queue, a failed retained value too unless a newer value of its topic is queued or was
  // taken since. Unknown ids (completed twice) are ignored.
  void completed(std::uint64_t id, bool ok);
  // Forgets what is in flight (the client finishes it on disconnect), uncounted.
  void release_in_flight() { in_flight_.clear(); }
  // Drops everything waiting (not what is in flight), counted as `why`; returns how many.
  std::size_t drop_waiting(OutboundDrop why);

  std::size_t waiting() const;
  std::size_t waiting(OutboundPriority p) const { return queues_[static_cast<std::size_t>(p)].size(); }
  std::size_t in_flight() const { return in_flight_.size(); }
  bool has_room() const { return in_flight_.size() < limits_.window; }
  const OutboundLimits& limits() const { return limits_; }
  const OutboundCounters& counters() const { return counters_; }
  // The oldest in-flight ticket's id (0 if none): MqttOutbox times out a stuck one.
  std::uint64_t oldest_in_flight() const;

 private:
  // A waiting retained value lives in topics_ (so a newer one replaces it in place); its queue
  // entry names the topic only. A waiting notice carries its message.
  struct Entry {
    std::string topic;
    std::optional<OutboundMessage> notice;
  };
  struct TopicState {
    std::uint64_t generation = 0;  // bumped on every push of the topic
    bool waiting = false;
    OutboundMessage value;  // the waiting value
  };
  struct InFlight {
    OutboundMessage message;
    std::uint64_t generation = 0;  // retained only
  };
  void enqueue_retained(OutboundMessage m, bool front);

  OutboundLimits limits_;
  std::array<std::deque<Entry>, kOutboundPriorities> queues_;
  std::unordered_map<std::string, TopicState> topics_;
  std::unordered_map<std::uint64_t, InFlight> in_flight_;
  std::uint64_t next_id_ = 1;
  std::size_t notices_waiting_ = 0;
  OutboundCounters counters_;
};

}  // namespace postwatch::aggregator
