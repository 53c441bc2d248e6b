// postwatch-fleet: the fleet's signing key, signed fleet bundles, their rollouts and remote
// commands (docs/fleet.md).
//
//   postwatch-fleet keygen --out DIR
//   postwatch-fleet sign --key FILE --version N --target T [--config FILE] [--catalogue FILE]
//                        [--health-deadline-s N] [--note TEXT] [--out FILE]
//   postwatch-fleet show FILE --keys FILE
//   postwatch-fleet rollout create --bundle FILE [--canary-percent N] [--wave-percent N]
//                                  [--wave-interval-s N] [--max-failed-percent N]
//   postwatch-fleet rollout status [ID] [--json]
//   postwatch-fleet rollout pause|resume|abort ID
//   postwatch-fleet command send --agent POST/AGENT COMMAND [--seq N] [--probe INDICATOR]
//                                [--ttl-s N] [--wait-s N]
//   postwatch-fleet command status [ID] [--json]
//     (rollout, command: [--aggregator URL] [--token-file FILE] [--ca FILE])
//
// keygen writes the fleet's Ed25519 key (fleet.key, kept offline) and its public half
// (fleet.pub, installed on every agent); sign writes a bundle the agents take; show checks a
// bundle as an agent would and prints what it holds. rollout hands a signed bundle to the
// aggregator's API for a staged rollout and follows or steers it (rollout_commands.cpp);
// command sends one agent a remote command (rebirth, flush, resend-from, run-probe,
// report-status) through the same API, waits for its answer if asked, and lists them
// (command_commands.cpp); nothing else here talks to the network.
// Exit status: 0 done, 1 a failure (a file that cannot be read or written, a refused bundle, the
// aggregator not reached or answering with an HTTP error, a command failed, expired or still
// pending after --wait-s), 2 usage (bad options, a bundle that would not be valid, a catalogue
// that does not load).
#include "cli_common.hpp"
#include "command_commands.hpp"
#include "postwatch/catalogue.hpp"
#include "postwatch/fleet_bundle.hpp"
#include "rollout_commands.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>

namespace po = boost::program_options;
namespace fs = std::filesystem;
using namespace postwatch;
using postwatch::fleet::iso_utc;
using postwatch::fleet::read_file;
using postwatch::fleet::UsageError;
using postwatch::fleet::whole_number;

namespace {

constexpr const char* kUsage =
    "usage: postwatch-fleet keygen --out DIR\n"
    "       postwatch-fleet sign --key FILE --version N --target TARGET [--config FILE] [--catalogue FILE]\n"
    "                            [--health-deadline-s N] [--note TEXT] [--out FILE]\n"
    "       postwatch-fleet show FILE --keys FILE\n"
    "       postwatch-fleet rollout create|status|pause|resume|abort ... (postwatch-fleet rollout --help)\n"
    "       postwatch-fleet command send|status ... (postwatch-fleet command --help)\n"
    "       postwatch-fleet keygen|sign|show|rollout|command --help\n";

po::options_description keygen_options() {
  po::options_description o("keygen: a new fleet key (refuses to replace one)");
  o.add_options()("help,h", "this help")("out", po::value<std::string>()->value_name("DIR")->required(),
                                         "where to write fleet.key (private, mode 0600) and fleet.pub (public)");
  return o;
}

po::options_description sign_options() {
  po::options_description o("sign: a signed bundle (written to --out, or to standard output)");
  o.add_options()("help,h", "this help")("key", po::value<std::string>()->value_name("FILE")->required(),
                                         "the fleet's private key (fleet.key from keygen)")(
      "version", po::value<std::string>()->value_name("N")->required(),
      "the bundle's version, above every version the fleet has had: the newest bundle wins")(
      "target", po::value<std::string>()->value_name("TARGET")->required(),
      "who takes it: fleet, region:REGION, post:POST or agent:POST/AGENT")(
      "config", po::value<std::string>()->value_name("FILE"),
      "a JSON merge patch onto the agents' config (docs/fleet.md)")(
      "catalogue", po::value<std::string>()->value_name("FILE"), "a whole catalogue; it must load")(
      "health-deadline-s", po::value<std::string>()->value_name("N")->default_value("120"),
      "seconds an agent has to show health after switching before it goes back (10 to 86400)")(
      "note", po::value<std::string>()->value_name("TEXT"), "free text for operators")(
      "out", po::value<std::string>()->value_name("FILE"), "where to write the bundle (default: standard output)");
  return o;
}

po::options_description show_options() {
  po::options_description o("show FILE: checks a bundle as an agent would and prints what it holds");
  o.add_options()("help,h", "this help")("keys", po::value<std::string>()->value_name("FILE")->required(),
                                         "the fleet's public keys (fleet.pub from keygen)");
  return o;
}

void print_help(std::ostream& out) {
  out << "postwatch-fleet — the fleet's signing key, signed fleet bundles, their rollouts and remote commands\n"
         "(docs/fleet.md)\n\n"
      << kUsage << "\n"
      << keygen_options() << "\n"
      << sign_options() << "\n"
      << show_options() << "\n";
  fleet::print_rollout_help(out);
  out << "\n";
  fleet::print_command_help(out);
  out << "\nExit status: 0 done; 1 a failure (a file not read or written, show: a refused bundle, rollout and\n"
         "command: the aggregator not reached or answering with an HTTP error, command send: the command failed,\n"
         "expired or is still pending after --wait-s); 2 usage (bad options, a bundle that would not be valid, a\n"
         "catalogue that does not load).\n";
}

// Writes `text` to a new file of mode `mode`; never replaces one.
void write_new_file(const fs::path& file, const std::string& text, mode_t mode) {
  int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) throw std::runtime_error("cannot create " + file.string() + ": " + std::strerror(errno));
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ok = ::fsync(fd) == 0 && ok;
  ok = ::close(fd) == 0 && ok;
  if (!ok) {
    fs::remove(file);
    throw std::runtime_error("cannot write " + file.string());
  }
}

// The fleet's private key; a public key file given in its place is named as such.
SigningKey load_private_key(const std::string& file) {
  try {
    return SigningKey::load(file);
  } catch (const std::runtime_error&) {
    bool is_public = false;
    try {
      is_public = !load_fleet_keys(file).empty();
    } catch (const std::runtime_error&) {
    }
    if (is_public)
      throw UsageError("--key " + file + " holds a public key (fleet.pub); signing needs the private fleet.key");
    throw;
  }
}

BundleTarget parse_target(const std::string& text) {
  using Scope = BundleTarget::Scope;
  const auto colon = text.find(':');
  const std::string scope = text.substr(0, colon), rest = colon == std::string::npos ? "" : text.substr(colon + 1);
  if (scope == "fleet" && colon == std::string::npos) return {Scope::Fleet, "", "", ""};
  if (scope == "region" && !rest.empty()) return {Scope::Region, rest, "", ""};
  if (scope == "post" && !rest.empty()) return {Scope::Post, "", rest, ""};
  if (scope == "agent") {
    const auto slash = rest.find('/');
    if (slash != std::string::npos && slash > 0 && slash + 1 < rest.size())
      return {Scope::Agent, "", rest.substr(0, slash), rest.substr(slash + 1)};
  }
  throw UsageError("--target must be fleet, region:REGION, post:POST or agent:POST/AGENT, not '" + text + "'");
}

po::variables_map parse(int argc, char** argv, const po::options_description& options,
                        const po::positional_options_description& positional = {}) {
  po::variables_map vm;
  po::store(po::command_line_parser(argc, argv).options(options).positional(positional).run(), vm);
  return vm;
}

int keygen(int argc, char** argv) {
  const auto options = keygen_options();
  auto vm = parse(argc, argv, options);
  if (vm.count("help")) {
    std::cout << "usage: postwatch-fleet keygen --out DIR\n" << options << "\n";
    return 0;
  }
  po::notify(vm);
  const fs::path dir = vm["out"].as<std::string>();
  const auto key_file = dir / "fleet.key", pub_file = dir / "fleet.pub";
  for (const auto& f : {key_file, pub_file})
    if (std::error_code ec; fs::exists(f, ec))
      throw std::runtime_error(f.string() +
                               " exists: keygen never replaces a fleet key (every agent holds its public half)");
  if (std::error_code ec; !fs::exists(dir, ec)) {
    fs::create_directories(dir);
    fs::permissions(dir, fs::perms::owner_all);
  }
  const auto key = SigningKey::generate();
  key.save(key_file);
  try {
    write_new_file(pub_file, "# postwatch fleet key " + key.key_id() + "\n" + to_hex(key.public_key()) + "\n", 0644);
  } catch (...) {
    fs::remove(key_file);
    throw;
  }
  std::cout << "wrote " << key_file.string() << " (the private key, mode 0600)\n"
            << "wrote " << pub_file.string() << " (the public key: install it on every agent)\n"
            << "key id " << key.key_id() << "\n"
            << "Keep " << key_file.string()
            << " offline, on the machine that signs bundles, and a copy in the safe: whoever holds it "
               "changes what every agent runs (docs/fleet.md, \"The fleet key\").\n";
  return 0;
}

int sign(int argc, char** argv) {
  const auto options = sign_options();
  auto vm = parse(argc, argv, options);
  if (vm.count("help")) {
    std::cout << "usage: postwatch-fleet sign --key FILE --version N --target TARGET [--config FILE] [--catalogue "
                 "FILE]\n                            [--health-deadline-s N] [--note TEXT] [--out FILE]\n"
              << options << "\n";
    return 0;
  }
  po::notify(vm);
  FleetBundle b;
  b.version =
      whole_number("version", vm["version"].as<std::string>(), 1, std::numeric_limits<std::uint64_t>::max(), "above 0");
  b.target = parse_target(vm["target"].as<std::string>());
  b.health_deadline_s = static_cast<std::uint32_t>(
      whole_number("health-deadline-s", vm["health-deadline-s"].as<std::string>(), 10, 86400, "from 10 to 86400"));
  if (vm.count("note")) b.note = vm["note"].as<std::string>();
  if (!vm.count("config") && !vm.count("catalogue"))
    throw UsageError("a bundle needs --config, --catalogue or both: without them it would change nothing");
  if (vm.count("config")) {
    const auto file = vm["config"].as<std::string>();
    b.config = read_file(file);
    try {
      if (!nlohmann::json::parse(b.config).is_object())
        throw UsageError("--config " + file + ": not a JSON object (a merge patch onto the agents' config)");
    } catch (const nlohmann::json::exception& e) {
      throw UsageError("--config " + file + ": not JSON: " + e.what());
    }
  }
  if (vm.count("catalogue")) {
    const auto file = vm["catalogue"].as<std::string>();
    b.catalogue = read_file(file);
    try {
      IndicatorCatalogue::parse(b.catalogue, file);
    } catch (const std::exception& e) {
      throw UsageError("the catalogue does not load, not signing it: " + std::string(e.what()));
    }
  }
  const auto key = load_private_key(vm["key"].as<std::string>());
  b.issued_at_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  const auto text = sign_bundle(b, key) + "\n";
  if (text.size() > kMaxBundleBytes)
    throw UsageError("the bundle is " + std::to_string(text.size()) + " bytes, over the " +
                     std::to_string(kMaxBundleBytes) + " agents take");
  const auto summary = "signed version " + std::to_string(b.version) + " for " + b.target.describe() + " with key " +
                       key.key_id() + "; roll it out with postwatch-fleet rollout create --bundle FILE (docs/fleet.md, " +
                       "\"Rollouts\"), or publish it retained to " + bundle_topic(b.target) + " for every agent at once";
  if (!vm.count("out")) {
    std::cout << text << std::flush;
    std::cerr << summary << "\n";
    return std::cout ? 0 : 1;
  }
  const auto out = vm["out"].as<std::string>();
  std::ofstream f(out, std::ios::binary | std::ios::trunc);
  if (!(f << text) || !f.flush()) throw std::runtime_error("cannot write " + out + ": " + std::strerror(errno));
  std::cout << "wrote " << out << ": " << summary << "\n";
  return 0;
}

int show(int argc, char** argv) {
  auto options = show_options();
  po::options_description all;
  all.add(options).add_options()("file", po::value<std::string>());
  po::positional_options_description positional;
  positional.add("file", 1);
  auto vm = parse(argc, argv, all, positional);
  if (vm.count("help")) {
    std::cout << "usage: postwatch-fleet show FILE --keys FILE\n" << options << "\n";
    return 0;
  }
  po::notify(vm);
  if (!vm.count("file")) throw UsageError("which bundle? (show FILE --keys FILE)");
  const auto file = vm["file"].as<std::string>();
  const auto keys = load_fleet_keys(vm["keys"].as<std::string>());
  const auto opened = open_bundle(read_file(file), keys);
  if (!opened.ok()) {
    std::cerr << "refused (" << to_string(opened.refusal) << "): " << opened.error << "\n";
    return 1;
  }
  const auto& b = opened.bundle;
  std::cout << "bundle           " << file << "\n"
            << "version          " << b.version << "\n"
            << "target           " << b.target.describe() << "\n"
            << "topic            " << bundle_topic(b.target) << "\n"
            << "issued at        " << iso_utc(b.issued_at_ms) << "\n"
            << "health deadline  " << b.health_deadline_s << " s\n"
            << "note             " << (b.note.empty() ? "(none)" : b.note) << "\n"
            << "key id           " << opened.key_id << "\n"
            << "config overlay   " << (b.config.empty() ? "(none: the agents keep their config)" : b.config) << "\n";
  if (b.catalogue.empty()) {
    std::cout << "catalogue        (none: the agents keep their catalogue)\n";
    return 0;
  }
  try {
    const auto cat = IndicatorCatalogue::parse(b.catalogue, file + ": catalogue");
    const auto j = nlohmann::json::parse(b.catalogue);
    std::cout << "catalogue        " << cat.indicators().size() << " indicators";
    if (auto v = j.find("catalogue_version"); v != j.end()) std::cout << ", catalogue_version " << v->dump();
    std::cout << "\n";
  } catch (const std::exception& e) {
    std::cout << "catalogue        does not load: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string command = argc > 1 ? argv[1] : "";
  if (command == "--help" || command == "-h" || command == "help") {
    print_help(std::cout);
    return 0;
  }
  auto* run = command == "keygen"    ? keygen
              : command == "sign"    ? sign
              : command == "show"    ? show
              : command == "rollout" ? fleet::rollout_command
              : command == "command" ? fleet::command_command
                                     : nullptr;
  if (!run) {
    std::cerr << (command.empty() ? std::string("postwatch-fleet: a command is needed")
                                  : "postwatch-fleet: unknown command '" + command + "'")
              << "\n"
              << kUsage;
    return 2;
  }
  // Errors name the subcommand too: "postwatch-fleet rollout pause: …".
  if ((command == "rollout" || command == "command") && argc > 2 && argv[2][0] != '-')
    command += " " + std::string(argv[2]);
  try {
    // The command's own name stands where a parser expects the program's.
    return run(argc - 1, argv + 1);
  } catch (const po::error& e) {
    std::cerr << "postwatch-fleet " << command << ": " << e.what() << "\n(see postwatch-fleet " << command
              << " --help)\n";
    return 2;
  } catch (const UsageError& e) {
    std::cerr << "postwatch-fleet " << command << ": " << e.what() << "\n";
    return 2;
  } catch (const std::invalid_argument& e) {  // sign_bundle: a bundle that would not be valid
    std::cerr << "postwatch-fleet " << command << ": " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "postwatch-fleet " << command << ": " << e.what() << "\n";
    return 1;
  }
}
