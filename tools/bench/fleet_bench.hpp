// postwatch-bench-fleet's two halves: the parent (fleet_bench.cpp) and the agents it runs in
// child processes of itself (fleet_agents.cpp), plus the small helpers both use.
#pragma once

#include <string>

namespace postwatch::bench::fleet {

// Raises this process's soft limit on open files to the hard one (a socket per agent).
void raise_file_limit();
// The value after `name` on the command line, or `dflt`.
std::string arg(int argc, char** argv, const std::string& name, const std::string& dflt);
bool flag(int argc, char** argv, const std::string& name);

// `postwatch-bench-fleet agents ...`: runs its share of the fleet, reads "go" on stdin, emits,
// drains, writes agents-<index>.json into --dir and exits.
int agents_main(int argc, char** argv);

}  // namespace postwatch::bench::fleet
