// Which parts of an agent's config a fleet bundle may change (docs/fleet.md, "What a bundle
// may change"), and the config that results. The broker, its credentials, TLS, the agent's
// identity and where its spool lives stay with the board's own file: a bundle signed with the
// fleet key may tune how an agent works, never where it sends or as whom.
#pragma once

#include "postwatch/agent/agent_config.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace postwatch::agent {

// The agent's own config text with `overlay` (a JSON merge patch, RFC 7386) applied. Problems
// (a field the bundle may not set, a patch that is not an object, a config file that is not
// JSON) go to `problems` with the field named as "config.<path>"; the result is then empty.
// `scripts` may be set only when the file itself says `fleet.allow_scripts: true`, since a
// script probe runs a command on the board.
std::string apply_config_overlay(std::string_view config_text, std::string_view overlay,
                                 std::vector<ConfigProblem>& problems);

}  // namespace postwatch::agent
