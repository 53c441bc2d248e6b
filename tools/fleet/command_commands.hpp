// postwatch-fleet command: remote commands to one agent through the aggregator's API (docs/fleet.md,
// "Remote commands").
#pragma once

#include <ostream>

namespace postwatch::fleet {

// argv[0] is "command", argv[1] the subcommand (send, status). Returns the exit status; throws
// UsageError or boost::program_options::error for usage (exit 2) and std::runtime_error for a
// failure (exit 1), a command the agent failed or that expired among them.
int command_command(int argc, char** argv);

// The command subcommands' usage and options, for postwatch-fleet --help.
void print_command_help(std::ostream& out);

}  // namespace postwatch::fleet
