// Remote commands to one agent (docs/fleet.md, "Remote commands"): the aggregator keeps each
// agent's pending commands in one retained JSON message on the agent's own command topic, so an
// agent that was offline finds them when it connects; a command leaves it when the agent
// answered or its time-to-live ran out. The agent answers each once, on its result topic.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace postwatch {

struct FleetCommand {
  std::string id;                  // the aggregator's, unique ("c12")
  std::string name;                // rebirth, flush, resend-from, run-probe, report-status
  std::uint64_t seq = 0;           // resend-from
  std::string probe;               // run-probe: the script probe's indicator
  std::int64_t expires_at_ms = 0;  // the aggregator's clock; it withdraws the command then
};

// "rebirth", "flush", "resend-from", "run-probe", "report-status".
const std::vector<std::string_view>& fleet_command_names();
// Empty when `c` is a command an agent can run, otherwise why not.
std::string check_fleet_command(const FleetCommand& c);

// {"format": "postwatch-commands/1", "commands": [...]}
std::string encode_fleet_commands(const std::vector<FleetCommand>& commands);
// The commands of a retained message; nullopt with `error` for anything else. Oversized (over
// 64 KiB), malformed or unknown commands are refused whole.
std::optional<std::vector<FleetCommand>> decode_fleet_commands(std::string_view text, std::string& error);

struct FleetCommandResult {
  std::string id, name;
  bool ok = false;
  std::string error;        // when !ok: one line
  std::string result_json;  // when ok: a JSON object as text ("{}" when it has nothing to say)
};
std::string encode_fleet_command_result(const FleetCommandResult& r);
std::optional<FleetCommandResult> decode_fleet_command_result(std::string_view text, std::string& error);

// postwatch/v1/fleet/command/<post>/<agent> (aggregator → agent, retained) and
// postwatch/v1/fleet/command-result/<post>/<agent> (agent → aggregator).
std::string command_topic(std::string_view post, std::string_view agent);
std::string command_result_topic(std::string_view post, std::string_view agent);
inline constexpr std::string_view command_result_filter = "postwatch/v1/fleet/command-result/+/+";
// The post and agent of a result topic; false when it is not one.
bool parse_command_result_topic(std::string_view topic, std::string& post, std::string& agent);

}  // namespace postwatch
