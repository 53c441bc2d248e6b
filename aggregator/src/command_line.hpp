// The aggregator's command line: the options --help lists and how each lands in
// AggregatorOptions. Their values are checked by options_problem(), as for any other caller.
#pragma once

#include "postwatch/aggregator/aggregator_options.hpp"

#include <string>
#include <variant>

namespace postwatch::aggregator {

struct CommandLine {
  AggregatorOptions options;   // the broker password read from --broker-password-file
  std::string catalogue_file;  // empty: default_catalogue_path()
  std::string log_level = "info";
};

// The command line, or the status main() exits with: 0 after --help or --version, 2 after an
// error (printed to stderr, naming the option).
std::variant<CommandLine, int> parse_command_line(int argc, char** argv);

}  // namespace postwatch::aggregator
