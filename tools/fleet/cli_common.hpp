// What postwatch-fleet's commands share: the usage error (exit 2), reading a file whole, a
// whole number option, a time for people; for those that talk to the aggregator (rollout,
// command), the connection's options, the client they make, JSON members as text and a table.
#pragma once

#include "aggregator_client.hpp"

#include <boost/program_options/options_description.hpp>
#include <boost/program_options/variables_map.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

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

// CONNECTION, the options every subcommand of `what` (rollout, command) takes: --aggregator,
// --token-file, --ca.
boost::program_options::options_description connection_options(const std::string& what);

// The aggregator's address, the token and the CA from those options and the environment
// (POSTWATCH_AGGREGATOR, POSTWATCH_TOKEN); `needs_operator` names what a read token may not do.
AggregatorClient client_of(const boost::program_options::variables_map& vm, const std::string& needs_operator);

// A member as text: a string as it is, a number as written, nothing when absent or null.
std::string text(const nlohmann::json& v);
std::string str(const nlohmann::json& j, const char* key);
// An integer member; 0 when absent or not one.
std::int64_t num(const nlohmann::json& j, const char* key);

// --json: the API's answer as it came, ending in a newline.
void print_answer(std::ostream& out, const std::string& body);

// Rows of cells, each column as wide as its widest cell; after_row[r], when given and not
// empty, goes on an indented line of its own under row r.
void print_table(std::ostream& out, const std::vector<std::vector<std::string>>& rows,
                 const std::vector<std::string>& after_row = {});

}  // namespace postwatch::fleet
