// The input format of fuzz_aggregator_ingest, shared with the seed writer: a sequence of
// records, each a selector byte, a 16-bit little-endian length and that many bytes. The
// selector says where the bytes go (FuzzChannel); a Tick record's first two bytes say
// whether ingest is caught up and how much of what the store was handed it has committed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace postwatch::fuzz {

enum class FuzzChannel : std::uint8_t {
  EventsA1,           // bamako/a1 events
  EventsA2,           // bamako/a2 events
  StateA1,            // bamako/a1 birth / death
  HeartbeatA1,        // bamako/a1 heartbeat
  EventsWrongRegion,  // bamako's agent on a topic naming another region
  EventsOtherPost,    // kabul/a1's topic (a payload for bamako there is a forgery)
  NotAnAgentTopic,
  Tick,  // the confirm timer: bytes [caught_up, committed share of handed-over, 0..255]
  Count
};

inline void append_record(std::vector<std::uint8_t>& out, FuzzChannel ch, const std::vector<std::uint8_t>& bytes) {
  out.push_back(static_cast<std::uint8_t>(ch));
  out.push_back(static_cast<std::uint8_t>(bytes.size() & 0xff));
  out.push_back(static_cast<std::uint8_t>(bytes.size() >> 8));
  out.insert(out.end(), bytes.begin(), bytes.end());
}

// Events are observed this long after the fuzz clock's start, so seeds stay inside the
// aggregator's lateness and clock-skew bounds.
constexpr std::int64_t kFuzzClockStartMs = 1'800'000'000'000;

}  // namespace postwatch::fuzz
