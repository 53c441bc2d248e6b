// Where accepted events go to be made durable. BatchIngest hands over one
// message's events at a time as plain records, so the hot path only copies PODs.
#pragma once

#include "postwatch/event.hpp"

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace postwatch::aggregator {

// Why an event was stored but not applied to the state. Every event whose seq is new is
// stored, so nothing is confirmed to an agent that is not in the store.
enum class EventRefusal : std::uint8_t { None = 0, Future, UnknownIndicator, BadValue };
std::string_view to_string(EventRefusal r);  // "", "future", "unknown_indicator", "bad_value"
std::optional<EventRefusal> parse_event_refusal(std::string_view s);

struct PersistedEvent {
  std::uint32_t agent = 0;      // id from register_agent
  std::uint32_t post = 0;       // catalogue index
  std::uint32_t indicator = 0;  // catalogue index; unknown_indicator holds the name when refused as unknown
  std::uint64_t seq = 0;
  std::int64_t observed_at_ms = 0;       // corrected: the agent's time minus clock_correction_ms
  std::int64_t clock_correction_ms = 0;  // 0: the agent's time as sent
  std::int64_t received_at_ms = 0;
  double number = 0;
  ValueKind kind = ValueKind::Level;
  bool late = false;  // observed before received minus the allowed lateness
  EventRefusal refused = EventRefusal::None;
  std::string_view text;               // valid during persist() only
  std::string_view unknown_indicator;  // valid during persist() only
};

class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void register_agent(std::uint32_t id, std::string_view post, std::string_view agent) = 0;
  virtual void persist(std::span<const PersistedEvent> events) = 0;
};

}  // namespace postwatch::aggregator
