// postwatch-fleet rollout: staged rollouts through the aggregator's API (docs/fleet.md, "Rollouts").
#pragma once

#include <ostream>

namespace postwatch::fleet {

// argv[0] is "rollout", argv[1] the subcommand (create, status, pause, resume, abort). Returns
// the exit status; throws UsageError or boost::program_options::error for usage (exit 2) and
// std::runtime_error for a failure (exit 1).
int rollout_command(int argc, char** argv);

// The rollout subcommands' usage and options, for postwatch-fleet --help.
void print_rollout_help(std::ostream& out);

}  // namespace postwatch::fleet
