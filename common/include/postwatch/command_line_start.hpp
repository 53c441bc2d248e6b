// The start the programs built on Boost.Program_options share: read the command line into the
// options' variables and answer --help and --version. Header-only, so only the programs that
// link Boost::program_options pay for it.
#pragma once

#include <boost/program_options.hpp>

#include <iostream>
#include <optional>
#include <string>

namespace postwatch {

// Reads argv into `desc`'s variables and `vm`. Returns the exit status when the program should
// end now: 0 after --help or --version (`version_line` is printed), 2 after a bad option (the
// error on stderr, prefixed by `program`); nothing when it should go on.
inline std::optional<int> start_command_line(int argc, char** argv,
                                             const boost::program_options::options_description& desc,
                                             const std::string& program, const std::string& version_line,
                                             boost::program_options::variables_map& vm) {
  namespace po = boost::program_options;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << program << ": " << e.what() << "\n(see --help)\n";
    return 2;
  }
  if (vm.count("help")) {
    std::cout << desc << "\n";
    return 0;
  }
  if (vm.count("version")) {
    std::cout << version_line << "\n";
    return 0;
  }
  return std::nullopt;
}

}  // namespace postwatch
