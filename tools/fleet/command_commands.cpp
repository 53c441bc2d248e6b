// postwatch-fleet command send|status: the aggregator's /api/v1/commands
// (aggregator/src/feed/command_routes.cpp; schemas Command, CommandRequest and CommandList of its
// openapi.json). The aggregator keeps a command for its agent until the agent answers or the TTL
// runs out; send hands one over and, with --wait-s, follows it that long.
#include "command_commands.hpp"

#include "cli_common.hpp"

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <iostream>
#include <limits>
#include <string>
#include <thread>
#include <vector>

namespace postwatch::fleet {
namespace po = boost::program_options;
using nlohmann::json;

namespace {

constexpr const char* kCommandUsage =
    "usage: postwatch-fleet command send --agent POST/AGENT COMMAND [--seq N] [--probe INDICATOR] [--ttl-s N]\n"
    "                                    [--wait-s N] [CONNECTION]\n"
    "       postwatch-fleet command status [ID] [--json] [CONNECTION]\n"
    "       COMMAND: rebirth, flush, resend-from (--seq), run-probe (--probe) or report-status\n"
    "       CONNECTION: [--aggregator URL] [--token-file FILE] [--ca FILE]\n";

constexpr const char* kCommands[] = {"rebirth", "flush", "resend-from", "run-probe", "report-status"};
constexpr auto kPollEvery = std::chrono::milliseconds(250);
constexpr std::uint64_t kMaxSeconds = 604800;  // 7 days: the longest TTL the aggregator takes

po::options_description send_options() {
  po::options_description o(
      "command send --agent POST/AGENT COMMAND: sends one agent a command (POST /api/v1/commands); it waits for "
      "an agent that is offline until its TTL runs out");
  o.add_options()("help,h", "this help")("agent", po::value<std::string>()->value_name("POST/AGENT")->required(),
                                         "the agent, as its post and agent id: kabul/gw-1")(
      "seq", po::value<std::string>()->value_name("N"), "resend-from: the first seq to send again (from 1)")(
      "probe", po::value<std::string>()->value_name("INDICATOR"),
      "run-probe: the indicator whose script probe the agent runs now")(
      "ttl-s", po::value<std::string>()->value_name("N"),
      "seconds the aggregator keeps it for the agent before it expires unanswered (1 to 604800; default 3600)")(
      "wait-s", po::value<std::string>()->value_name("N"),
      "seconds to wait for the agent's answer, polling every 250 ms, then print it (0 to 604800; default 0: "
      "print the command as sent and do not wait); exit 1 when it failed, expired or is still pending then");
  return o;
}

po::options_description status_options() {
  po::options_description o("command status [ID]: the newest 200 commands, newest first, or one in detail");
  o.add_options()("help,h", "this help")("json", "print the API's JSON as it came (schemas CommandList, Command)");
  return o;
}

// Parses a subcommand's own options, the connection's and one positional argument, `positional`.
po::variables_map parse(int argc, char** argv, const po::options_description& own, const char* positional_name) {
  po::options_description all;
  all.add(own).add(connection_options("command"));
  all.add_options()(positional_name, po::value<std::string>());
  po::positional_options_description positional;
  positional.add(positional_name, 1);
  po::variables_map vm;
  po::store(po::command_line_parser(argc, argv).options(all).positional(positional).run(), vm);
  return vm;
}

std::string command_id(const po::variables_map& vm) {
  if (!vm.count("id")) return "";
  const auto id = vm["id"].as<std::string>();
  std::uint64_t n = 0;
  const char* digits = id.data() + 1;
  auto [end, ec] = std::from_chars(digits, id.data() + id.size(), n);
  if (id.size() < 2 || id[0] != 'c' || ec != std::errc() || end != id.data() + id.size() || n == 0)
    throw UsageError("a command ID is c and a number, c12 say (postwatch-fleet command status lists them), not '" + id +
                     "'");
  return id;
}

// "report-status", "resend-from 120", "run-probe agent_cpu_percent"
std::string what_of(const json& c) {
  std::string out = str(c, "command");
  if (c.contains("seq")) out += " " + str(c, "seq");
  if (c.contains("probe")) out += " " + str(c, "probe");
  return out;
}

std::string agent_of(const json& c) { return str(c, "post") + "/" + str(c, "agent"); }

// "command c12 (report-status) for kabul/gw-1"
std::string named(const json& c) { return "command " + str(c, "id") + " (" + what_of(c) + ") for " + agent_of(c); }

// When it was answered, or when it expires (expired).
std::string answered_or_expires(const json& c) {
  const auto state = str(c, "state");
  if (num(c, "answered_at_ms") > 0) return iso_utc(num(c, "answered_at_ms"));
  return (state == "expired" ? "expired " : "expires ") + iso_utc(num(c, "expires_at_ms"));
}

void print_list(const json& list) {
  const json commands = list.value("commands", json::array());
  if (commands.empty()) {
    std::cout << "no commands\n";
    return;
  }
  std::vector<std::vector<std::string>> rows{
      {"ID", "COMMAND", "AGENT", "STATE", "ISSUED", "ANSWERED/EXPIRES", "ERROR"}};
  for (const auto& c : commands)
    rows.push_back({str(c, "id"), what_of(c), agent_of(c), str(c, "state"), iso_utc(num(c, "issued_at_ms")),
                    answered_or_expires(c), str(c, "error")});
  print_table(std::cout, rows);
}

void print_command(const json& c) {
  const auto field = [](const char* name, const std::string& value) {
    std::cout << name << std::string(17 - std::string(name).size(), ' ') << value << "\n";
  };
  field("command", str(c, "id"));
  field("runs", what_of(c));
  field("agent", agent_of(c));
  field("state", str(c, "state"));
  field("issued", iso_utc(num(c, "issued_at_ms")) + " by " + str(c, "by"));
  field("expires", iso_utc(num(c, "expires_at_ms")));
  if (num(c, "answered_at_ms") > 0) field("answered", iso_utc(num(c, "answered_at_ms")));
  if (c.contains("error")) field("error", str(c, "error"));
  if (auto r = c.find("result"); r != c.end()) std::cout << "result\n" << r->dump(2) << "\n";
}

// What became of a command send waited for: printed when done (exit 0), thrown otherwise (exit 1).
int outcome(const json& c, std::uint64_t waited_s) {
  const auto state = str(c, "state");
  if (state == "done") {
    const json result = c.value("result", json::object());
    std::cout << named(c) << " done at " << iso_utc(num(c, "answered_at_ms"));
    if (str(c, "command") == "report-status")
      std::cout << "\n" << result.dump(2) << "\n";
    else
      std::cout << (result.empty() ? std::string() : ": " + result.dump()) << "\n";
    return 0;
  }
  if (state == "failed") throw std::runtime_error(named(c) + " failed: " + str(c, "error"));
  if (state == "expired")
    throw std::runtime_error(named(c) + " expired unanswered at " + iso_utc(num(c, "expires_at_ms")) +
                             ": the agent did not take it within its TTL, and never will");
  if (state == "pending")
    throw std::runtime_error(named(c) + " is still pending after " + std::to_string(waited_s) +
                             " s: the aggregator keeps it for the agent until its TTL runs out at " +
                             iso_utc(num(c, "expires_at_ms")) + " (postwatch-fleet command status " + str(c, "id") +
                             ")");
  throw std::runtime_error(named(c) + " is in a state this tool does not know: '" + state + "'");
}

int send(int argc, char** argv) {
  const auto own = send_options();
  auto vm = parse(argc, argv, own, "command");
  if (vm.count("help")) {
    std::cout << kCommandUsage << own << "\n" << connection_options("command") << "\n";
    return 0;
  }
  po::notify(vm);
  if (!vm.count("command")) throw UsageError("which command? rebirth, flush, resend-from, run-probe or report-status");
  const auto name = vm["command"].as<std::string>();
  if (std::find(std::begin(kCommands), std::end(kCommands), name) == std::end(kCommands))
    throw UsageError("unknown command '" + name + "' (rebirth, flush, resend-from, run-probe, report-status)");
  const auto agent = vm["agent"].as<std::string>();
  const auto slash = agent.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == agent.size() ||
      agent.find('/', slash + 1) != std::string::npos)
    throw UsageError("--agent is POST/AGENT, kabul/gw-1 say, not '" + agent + "'");
  json request{{"post", agent.substr(0, slash)}, {"agent", agent.substr(slash + 1)}, {"command", name}};
  if (name == "resend-from") {
    if (!vm.count("seq")) throw UsageError("resend-from needs --seq N: the first seq to send again");
    request["seq"] =
        whole_number("seq", vm["seq"].as<std::string>(), 1, std::numeric_limits<std::uint64_t>::max(), "from 1");
  } else if (vm.count("seq")) {
    throw UsageError("--seq is for resend-from only");
  }
  if (name == "run-probe") {
    if (!vm.count("probe") || vm["probe"].as<std::string>().empty())
      throw UsageError("run-probe needs --probe INDICATOR: the indicator whose script probe to run");
    request["probe"] = vm["probe"].as<std::string>();
  } else if (vm.count("probe")) {
    throw UsageError("--probe is for run-probe only");
  }
  const auto range = "from 1 to " + std::to_string(kMaxSeconds);
  if (vm.count("ttl-s")) request["ttl_s"] = whole_number("ttl-s", vm["ttl-s"].as<std::string>(), 1, kMaxSeconds, range);
  const std::uint64_t wait_s = vm.count("wait-s")
                                   ? whole_number("wait-s", vm["wait-s"].as<std::string>(), 0, kMaxSeconds,
                                                  "from 0 to " + std::to_string(kMaxSeconds))
                                   : 0;
  const auto client = client_of(vm, "commands");
  json c = client.post("/api/v1/commands", request).json();
  const auto id = str(c, "id");
  std::cout << named(c) << " is " << str(c, "state") << "; it expires unanswered at "
            << iso_utc(num(c, "expires_at_ms")) << std::endl;
  if (wait_s == 0) return 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(wait_s);
  while (str(c, "state") == "pending") {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) break;
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(kPollEvery, deadline - now));
    c = client.get("/api/v1/commands/" + id).json();
  }
  return outcome(c, wait_s);
}

int status(int argc, char** argv) {
  const auto own = status_options();
  auto vm = parse(argc, argv, own, "id");
  if (vm.count("help")) {
    std::cout << kCommandUsage << own << "\n" << connection_options("command") << "\n";
    return 0;
  }
  po::notify(vm);
  const auto id = command_id(vm);
  const auto client = client_of(vm, "commands");
  const auto reply = client.get(id.empty() ? "/api/v1/commands" : "/api/v1/commands/" + id);
  if (vm.count("json")) {
    print_answer(std::cout, reply.body);
    return 0;
  }
  if (id.empty())
    print_list(reply.json());
  else
    print_command(reply.json());
  return 0;
}

}  // namespace

void print_command_help(std::ostream& out) {
  out << kCommandUsage << "\n" << send_options() << "\n" << status_options() << "\n" << connection_options("command");
}

int command_command(int argc, char** argv) {
  const std::string sub = argc > 1 ? argv[1] : "";
  if (sub == "--help" || sub == "-h" || sub == "help") {
    print_command_help(std::cout);
    return 0;
  }
  // The subcommand's name stands where a parser expects the program's.
  if (sub == "send") return send(argc - 1, argv + 1);
  if (sub == "status") return status(argc - 1, argv + 1);
  throw UsageError(sub.empty() ? std::string("a subcommand is needed: send or status")
                               : "unknown subcommand '" + sub + "' (send, status)");
}

}  // namespace postwatch::fleet
