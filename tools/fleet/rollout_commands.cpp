// postwatch-fleet rollout create|status|pause|resume|abort: the aggregator's /api/v1/rollouts
// (aggregator/src/feed/rollout_routes.cpp; schemas Rollout, RolloutRequest and RolloutList of its
// openapi.json). The aggregator steps the rollout; this only starts, shows and steers it.
#include "rollout_commands.hpp"

#include "aggregator_client.hpp"
#include "cli_common.hpp"
#include "postwatch/fleet_bundle.hpp"

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include <charconv>
#include <iostream>
#include <string>
#include <vector>

namespace postwatch::fleet {
namespace po = boost::program_options;
using nlohmann::json;

namespace {

constexpr const char* kRolloutUsage =
    "usage: postwatch-fleet rollout create --bundle FILE [--canary-percent N] [--wave-percent N]\n"
    "                                      [--wave-interval-s N] [--max-failed-percent N] [CONNECTION]\n"
    "       postwatch-fleet rollout status [ID] [--json] [CONNECTION]\n"
    "       postwatch-fleet rollout pause|resume|abort ID [CONNECTION]\n"
    "       CONNECTION: [--aggregator URL] [--token-file FILE] [--ca FILE]\n";

po::options_description create_options() {
  po::options_description o(
      "rollout create: starts a staged rollout of a signed bundle (POST /api/v1/rollouts); the aggregator's "
      "defaults apply to what is not given");
  o.add_options()("help,h", "this help")("bundle", po::value<std::string>()->value_name("FILE")->required(),
                                         "the signed bundle postwatch-fleet sign wrote")(
      "canary-percent", po::value<std::string>()->value_name("N"),
      "of the agents addressed, the canary that gets it first, at least one agent (1 to 100; default 10)")(
      "wave-percent", po::value<std::string>()->value_name("N"),
      "of the agents addressed, each wave after the canary (1 to 100; default 25)")(
      "wave-interval-s", po::value<std::string>()->value_name("N"),
      "seconds at least between two waves' starts (0 to 604800; default 60)")(
      "max-failed-percent", po::value<std::string>()->value_name("N"),
      "of the agents reached: more failed stops the rollout by itself (0 to 100; default 20)");
  return o;
}

po::options_description status_options() {
  po::options_description o("rollout status [ID]: every rollout, newest first, or one with its agents");
  o.add_options()("help,h", "this help")("json", "print the API's JSON as it came (schemas RolloutList, Rollout)");
  return o;
}

po::options_description change_options() {
  po::options_description o(
      "rollout pause|resume|abort ID: pause holds the next wave back, resume lets it go, abort ends the rollout "
      "(agents that applied the bundle keep it)");
  o.add_options()("help,h", "this help");
  return o;
}

std::string rollout_id(const po::variables_map& vm, bool required) {
  if (!vm.count("id")) {
    if (required) throw UsageError("which rollout? give its ID (postwatch-fleet rollout status lists them)");
    return "";
  }
  const auto text = vm["id"].as<std::string>();
  std::uint64_t id = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (ec != std::errc() || end != text.data() + text.size() || id == 0)
    throw UsageError("a rollout ID is a number from 1 (postwatch-fleet rollout status lists them), not '" + text + "'");
  return text;
}

// "9: 4 waiting, 1 sent, 4 applied, 0 failed"
std::string agent_counts(const json& r) {
  const json counts = r.value("counts", json::object());
  std::string out = std::to_string(r.value("agents", json::array()).size()) + ":";
  const char* sep = " ";
  for (const char* state : {"waiting", "sent", "applied", "failed"}) {
    out += sep + std::to_string(num(counts, state)) + " " + state;
    sep = ", ";
  }
  return out;
}

// Where the canary and the waves are: "canary: 2 awaited", "wave 1 of 2 answered; next from …".
std::string stage_of(const json& r) {
  const auto waves = num(r, "waves"), wave = num(r, "wave");
  if (waves == 0) return "no agents";
  if (str(r, "phase") == "complete") return "every wave answered";
  const std::string name = wave == 0 ? "canary" : "wave " + std::to_string(wave) + " of " + std::to_string(waves - 1);
  if (str(r, "phase") == "aborted") return "stopped at " + (wave == 0 ? std::string("the canary") : name);
  if (!r.value("wave_sent", false)) return name + " not sent yet";
  std::size_t awaited = 0;
  for (const auto& a : r.value("agents", json::array()))
    if (num(a, "wave") == wave && str(a, "state") == "sent") ++awaited;
  if (awaited > 0) return name + ": " + std::to_string(awaited) + " awaited";
  if (wave + 1 >= waves) return name + " answered";
  const auto next_ms = num(r, "wave_started_ms") + num(r.value("policy", json::object()), "wave_interval_s") * 1000;
  return name + " answered; the next wave from " + iso_utc(next_ms);
}

std::string policy_of(const json& r) {
  const json p = r.value("policy", json::object());
  return "canary " + str(p, "canary_percent") + " %, waves of " + str(p, "wave_percent") + " % at least " +
         str(p, "wave_interval_s") + " s apart, stops above " + str(p, "max_failed_percent") + " % failed";
}

void print_list(const json& list) {
  const json rollouts = list.value("rollouts", json::array());
  if (!list.value("enabled", true))
    std::cout << "rollouts are off on this aggregator: it was started without --fleet-keys (docs/fleet.md)\n";
  if (rollouts.empty()) {
    std::cout << "no rollouts\n";
    return;
  }
  std::vector<std::vector<std::string>> rows{{"ID", "VERSION", "PHASE", "TARGET", "AGENTS", "STAGE"}};
  std::vector<std::string> notes{""};
  for (const auto& r : rollouts) {
    rows.push_back({str(r, "id"), str(r, "version"), str(r, "phase"), str(r, "target"), agent_counts(r), stage_of(r)});
    notes.push_back(str(r, "stop_reason").empty() ? "" : "stopped: " + str(r, "stop_reason"));
  }
  print_table(std::cout, rows, notes);
}

void print_rollout(const json& r) {
  const auto field = [](const char* name, const std::string& value) {
    std::cout << name << std::string(17 - std::string(name).size(), ' ') << value << "\n";
  };
  std::string carries;
  for (const auto& c : r.value("carries", json::array())) carries += (carries.empty() ? "" : ", ") + text(c);
  field("rollout", str(r, "id"));
  field("version", str(r, "version"));
  field("target", str(r, "target"));
  field("topic", str(r, "topic"));
  field("carries", carries);
  field("note", str(r, "note").empty() ? "(none)" : str(r, "note"));
  field("phase", str(r, "phase"));
  if (!str(r, "stop_reason").empty()) field("stopped", str(r, "stop_reason"));
  field("started", iso_utc(num(r, "created_at_ms")) + " by " + str(r, "created_by"));
  if (num(r, "ended_at_ms") > 0) field("ended", iso_utc(num(r, "ended_at_ms")));
  field("policy", policy_of(r));
  field("stage", stage_of(r));
  field("agents", agent_counts(r));
  const json agents = r.value("agents", json::array());
  if (agents.empty()) return;
  std::vector<std::vector<std::string>> rows{{"AGENT", "REGION", "WAVE", "STATE", "SENT AT", "REASON"}};
  for (const auto& a : agents) {
    const auto wave = num(a, "wave");
    rows.push_back({str(a, "post") + "/" + str(a, "agent"), str(a, "region"),
                    wave == 0 ? "canary" : std::to_string(wave), str(a, "state"),
                    num(a, "sent_at_ms") > 0 ? iso_utc(num(a, "sent_at_ms")) : "-", str(a, "reason")});
  }
  std::cout << "\n";
  print_table(std::cout, rows);
}

// Parses a subcommand's own options, the connection's and ID as a positional argument.
po::variables_map parse(int argc, char** argv, const po::options_description& own, bool takes_id) {
  po::options_description all;
  all.add(own).add(connection_options("rollout"));
  po::positional_options_description positional;
  if (takes_id) {
    all.add_options()("id", po::value<std::string>());
    positional.add("id", 1);
  }
  po::variables_map vm;
  po::store(po::command_line_parser(argc, argv).options(all).positional(positional).run(), vm);
  return vm;
}

int create(int argc, char** argv) {
  const auto own = create_options();
  auto vm = parse(argc, argv, own, false);
  if (vm.count("help")) {
    std::cout << kRolloutUsage << own << "\n" << connection_options("rollout") << "\n";
    return 0;
  }
  po::notify(vm);
  // Only what is given goes: the aggregator's defaults apply to the rest.
  json request = json::object();
  const struct {
    const char* option;
    const char* field;  // RolloutRequest, as rollout_routes.cpp reads it
    std::uint64_t min, max;
  } numbers[] = {{"canary-percent", "canary_percent", 1, 100},
                 {"wave-percent", "wave_percent", 1, 100},
                 {"wave-interval-s", "wave_interval_s", 0, 604800},
                 {"max-failed-percent", "max_failed_percent", 0, 100}};
  for (const auto& n : numbers)
    if (vm.count(n.option))
      request[n.field] = whole_number(n.option, vm[n.option].as<std::string>(), n.min, n.max,
                                      "from " + std::to_string(n.min) + " to " + std::to_string(n.max));
  const auto bundle_file = vm["bundle"].as<std::string>();
  auto bundle = json::parse(read_file(bundle_file), nullptr, false);
  // Only its shape: the aggregator checks the signature against the fleet keys it holds.
  if (!bundle.is_object() || bundle.value("format", "") != kBundleFormat)
    throw UsageError("--bundle " + bundle_file + " is not a signed bundle (postwatch-fleet sign writes one)");
  request["bundle"] = std::move(bundle);
  const auto client = client_of(vm, "rollouts");
  const json r = client.post("/api/v1/rollouts", request).json();
  std::string carries;
  for (const auto& c : r.value("carries", json::array())) carries += (carries.empty() ? "" : " and ") + text(c);
  const auto agents = r.value("agents", json::array()).size();
  std::cout << "rollout " << str(r, "id") << " started: v" << str(r, "version") << " (" << carries << ") for "
            << str(r, "target") << ", " << agents << " agent(s) in " << str(r, "waves") << " wave(s); " << policy_of(r)
            << "\n";
  if (agents == 0)
    std::cout << "no online agent it addresses takes bundles: it completes at once, and agents take it from "
              << str(r, "topic") << " when they connect\n";
  return 0;
}

int status(int argc, char** argv) {
  const auto own = status_options();
  auto vm = parse(argc, argv, own, true);
  if (vm.count("help")) {
    std::cout << kRolloutUsage << own << "\n" << connection_options("rollout") << "\n";
    return 0;
  }
  po::notify(vm);
  const auto id = rollout_id(vm, false);
  const auto client = client_of(vm, "rollouts");
  const auto reply = client.get(id.empty() ? "/api/v1/rollouts" : "/api/v1/rollouts/" + id);
  if (vm.count("json")) {
    print_answer(std::cout, reply.body);
    return 0;
  }
  if (id.empty())
    print_list(reply.json());
  else
    print_rollout(reply.json());
  return 0;
}

int change(const std::string& action, int argc, char** argv) {
  const auto own = change_options();
  auto vm = parse(argc, argv, own, true);
  if (vm.count("help")) {
    std::cout << kRolloutUsage << own << "\n" << connection_options("rollout") << "\n";
    return 0;
  }
  po::notify(vm);
  const auto id = rollout_id(vm, true);
  const auto client = client_of(vm, "rollouts");
  const json r = client.post("/api/v1/rollouts/" + id + "/" + action).json();
  std::cout << "rollout " << id << " is " << str(r, "phase");
  if (!str(r, "stop_reason").empty()) std::cout << " (" << str(r, "stop_reason") << ")";
  std::cout << ": " << stage_of(r) << "; agents " << agent_counts(r) << "\n";
  return 0;
}

}  // namespace

void print_rollout_help(std::ostream& out) {
  out << kRolloutUsage << "\n"
      << create_options() << "\n"
      << status_options() << "\n"
      << change_options() << "\n"
      << connection_options("rollout");
}

int rollout_command(int argc, char** argv) {
  const std::string sub = argc > 1 ? argv[1] : "";
  if (sub == "--help" || sub == "-h" || sub == "help") {
    print_rollout_help(std::cout);
    return 0;
  }
  // The subcommand's name stands where a parser expects the program's.
  if (sub == "create") return create(argc - 1, argv + 1);
  if (sub == "status") return status(argc - 1, argv + 1);
  if (sub == "pause" || sub == "resume" || sub == "abort") return change(sub, argc - 1, argv + 1);
  throw UsageError(sub.empty() ? std::string("a subcommand is needed: create, status, pause, resume or abort")
                               : "unknown subcommand '" + sub + "' (create, status, pause, resume, abort)");
}

}  // namespace postwatch::fleet
