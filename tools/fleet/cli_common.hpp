// What postwatch-fleet's commands share: the usage error (exit 2), reading a file whole, a
// whole number option, a time for people.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace postwatch::fleet {

// A usage error: exit 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The file's bytes; throws std::runtime_error naming it.
std::string read_file(const std::string& file);

// `text` as a whole number from `min` to `max`; `range` says which in the UsageError.
std::uint64_t whole_number(const std::string& option, const std::string& text, std::uint64_t min, std::uint64_t max,
                           const std::string& range);

// Milliseconds since the epoch as 2024-05-01T12:00:00.000Z.
std::string iso_utc(std::int64_t ms);

}  // namespace postwatch::fleet
