// Where accepted events go to be made durable. BatchIngest hands over one
// message's events at a time as plain records, so the hot path only copies PODs.
#pragma once

#include "postwatch/event.hpp"

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace postwatch::aggregator {

struct PersistedEvent {
  std::uint32_t agent = 0;  // id from register_agent
  std::uint32_t post = 0;   // catalogue index
  std::uint32_t indicator = 0;
  std::uint64_t seq = 0;
  std::int64_t observed_at_ms = 0;
  std::int64_t received_at_ms = 0;
  double number = 0;
  ValueKind kind = ValueKind::Level;
  bool late = false;      // beyond the allowed lateness: kept, not rolled up
  std::string_view text;  // valid during persist() only
};

class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void register_agent(std::uint32_t id, std::string_view post, std::string_view agent) = 0;
  virtual void persist(std::span<const PersistedEvent> events) = 0;
};

}  // namespace postwatch::aggregator
