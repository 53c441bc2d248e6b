// postwatch-sim: a fleet of simulated posts, each publishing indicator events
// through the real agent code, so the aggregator's goal board has a world to show;
// a named scenario (tools/simulator/scenarios/, docs/simulator.md) says what happens.
#include "broker_control.hpp"
#include "fleet_enrolment.hpp"
#include "in_process_fleet.hpp"
#include "process_fleet.hpp"
#include "scenario.hpp"
#include "scenario_runner.hpp"
#include "simulation.hpp"
#include "story.hpp"
#include "uplink_relay.hpp"

#include "postwatch/clock.hpp"
#include "postwatch/command_line_start.hpp"
#include "postwatch/secret_file.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <boost/program_options.hpp>

#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <thread>
#include <variant>

#ifndef POSTWATCH_VERSION
#define POSTWATCH_VERSION "dev"
#endif

namespace {
using namespace postwatch;
namespace po = boost::program_options;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr auto kTick = std::chrono::milliseconds(100);
constexpr auto kProgressEvery = std::chrono::seconds(5);
constexpr auto kConnectTimeout = std::chrono::seconds(10);
constexpr std::size_t kMaxAgentsPerPost = 20;

// --identity-dir, kept; or a temporary directory, removed at the end (the keys of a run's
// agents are of no use to the next run: its agent ids differ).
class TempIdentityDir {
 public:
  explicit TempIdentityDir(const std::string& given) {
    if (!given.empty()) {
      path_ = given;
      fs::create_directories(path_);
      return;
    }
    std::string templ = (fs::temp_directory_path() / "postwatch-sim-keys-XXXXXX").string();
    if (!::mkdtemp(templ.data())) throw std::runtime_error("cannot make a temporary directory for the agents' keys");
    path_ = templ;
    remove_ = true;
  }
  ~TempIdentityDir() {
    std::error_code ec;
    if (remove_) fs::remove_all(path_, ec);
  }
  TempIdentityDir(const TempIdentityDir&) = delete;
  TempIdentityDir& operator=(const TempIdentityDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
  bool remove_ = false;
};

std::atomic<bool> g_stop{false};
static_assert(std::atomic<bool>::is_always_lock_free, "set from a signal handler");
void on_signal(int) { g_stop = true; }

// Shipped scenarios: the source tree's when this binary runs from a build tree, else the installed ones.
fs::path default_scenario_dir() {
  if (fs::is_directory(POSTWATCH_SOURCE_SCENARIO_DIR)) return POSTWATCH_SOURCE_SCENARIO_DIR;
  return POSTWATCH_INSTALLED_SCENARIO_DIR;
}

// postwatch-agent next to this binary (installed), else the one built with it.
fs::path default_agent_binary() {
  std::error_code ec;
  auto sibling = fs::read_symlink("/proc/self/exe", ec).parent_path() / "postwatch-agent";
  if (!ec && ::access(sibling.c_str(), X_OK) == 0) return sibling;
  return POSTWATCH_AGENT_BINARY;
}

struct Options {
  std::string broker = "tcp://127.0.0.1:1883";
  std::string catalogue = default_catalogue_path().string();
  std::string scenario = "baseline";
  std::string scenario_dir = default_scenario_dir().string();
  bool list_scenarios = false;
  std::size_t posts = 0;  // 0: every post the scenario allows
  std::size_t agents_per_post = 1;
  double rate = 2;
  double duration_s = 0;
  // A confirmation takes about a second (the aggregator confirms what its store committed, every
  // --confirm-interval-ms); 10 s covers a loaded machine.
  double drain_s = 10;
  std::uint64_t seed = 1;
  bool quiet = false;
  std::string broker_stop_cmd, broker_start_cmd;
  bool processes = false;
  std::string agent_binary = default_agent_binary().string();
  std::string work_dir;
  std::string enrol;  // the aggregator's http://host:port: enrol every agent first (signed fleet)
  std::string enrol_token_file;
  std::string identity_dir;
  std::string compression = "none";
  std::string fleet_keys;  // --processes: each agent takes fleet bundles signed with these keys
};

// The options, or the exit code when the program should end right away.
std::variant<Options, int> parse_options(int argc, char** argv) {
  Options o;
  po::options_description desc(
      "postwatch-sim — simulated posts publishing indicator events through the real agent code\n\noptions");
  desc.add_options()("help,h", "show this help")("version", "print the version")(
      "broker", po::value(&o.broker)->default_value(o.broker),
      "MQTT broker URI; a comma-separated list gives every agent fallbacks (the other nodes of a NATS cluster)")(
      "catalogue", po::value(&o.catalogue)->value_name("FILE"),
      (std::string("indicator catalogue (JSON); default: ") + kDefaultCatalogueHelp).c_str())(
      "scenario", po::value(&o.scenario)->default_value(o.scenario),
      "scenario: a name from --scenario-dir, or a JSON file (docs/simulator.md)")(
      "scenario-dir", po::value(&o.scenario_dir)->default_value(o.scenario_dir), "where scenario names are looked up")(
      "list-scenarios", po::bool_switch(&o.list_scenarios), "list the scenarios in --scenario-dir and exit")(
      "posts", po::value(&o.posts)->default_value(o.posts),
      "number of simulated posts; 0 = every post the scenario allows (by default the whole catalogue). Posts the "
      "scenario's steps name come first, then featured posts such as bamako, kyiv, moscow, the rest drawn by seed")(
      "agents-per-post", po::value(&o.agents_per_post)->default_value(o.agents_per_post),
      "agents at each post, each reporting the post's signals at --rate")(
      "rate", po::value(&o.rate)->default_value(o.rate), "events per second per agent")(
      "duration", po::value(&o.duration_s)->default_value(o.duration_s), "seconds to run; 0 = until SIGINT/SIGTERM")(
      "drain", po::value(&o.drain_s)->default_value(o.drain_s),
      "at the end, seconds to wait for the aggregator to confirm what the agents still hold; what is left is "
      "reported as never confirmed")("seed", po::value(&o.seed)->default_value(o.seed),
                                     "random seed: same seed, same posts and episodes")(
      "quiet", po::bool_switch(&o.quiet), "no per-post lines, episode announcements or agent info logs")(
      "broker-stop-cmd", po::value(&o.broker_stop_cmd),
      "shell command that stops the broker, for broker_outage steps (with --broker-start-cmd); without both, an "
      "outage cuts every agent's uplink instead")("broker-start-cmd", po::value(&o.broker_start_cmd),
                                                  "shell command that starts the broker again")(
      "processes", po::bool_switch(&o.processes),
      "run each agent as its own postwatch-agent process fed through a FIFO (at most 200), instead of in-process")(
      "agent-binary", po::value(&o.agent_binary)->default_value(o.agent_binary), "postwatch-agent, for --processes")(
      "work-dir", po::value(&o.work_dir),
      "--processes: where agent configs, FIFOs, spools and logs go (kept); default a temporary directory, removed")(
      "enrol", po::value(&o.enrol)->value_name("URL"),
      "enrol every agent with the aggregator at URL (http://host:port) before starting, as postwatch-agent enrol "
      "does: the fleet then signs everything it publishes (docs/security.md)")(
      "enrol-token-file", po::value(&o.enrol_token_file)->value_name("FILE"),
      "--enrol: a file (0600) holding an operator token of the aggregator's --tokens-file")(
      "identity-dir", po::value(&o.identity_dir)->value_name("DIR"),
      "--enrol: where each agent's key and the aggregator's key go (kept); default a temporary directory, removed")(
      "compression", po::value(&o.compression)->default_value(o.compression),
      "every agent's uplink.compression: none, zstd or zstd-dictionary (docs/agent.md, \"Thin links\")")(
      "fleet-keys", po::value(&o.fleet_keys)->value_name("FILE"),
      "--processes: every agent takes fleet bundles signed by these keys (fleet.pub) and remote commands, so "
      "rollouts through the aggregator reach the simulated fleet (docs/fleet.md)");
  po::variables_map vm;
  if (auto status =
          start_command_line(argc, argv, desc, "postwatch-sim", std::string("postwatch-sim ") + POSTWATCH_VERSION, vm))
    return *status;
  if (!(o.rate > 0 && o.rate <= 100000) || !(o.duration_s >= 0) || !(o.drain_s >= 0 && o.drain_s <= 86400)) {
    std::cerr << "postwatch-sim: need 0 < --rate <= 100000, --duration >= 0 and 0 <= --drain <= 86400\n";
    return 2;
  }
  if (o.agents_per_post < 1 || o.agents_per_post > kMaxAgentsPerPost) {
    std::cerr << "postwatch-sim: --agents-per-post must be 1 to " << kMaxAgentsPerPost << "\n";
    return 2;
  }
  if (o.broker_stop_cmd.empty() != o.broker_start_cmd.empty()) {
    std::cerr << "postwatch-sim: give both --broker-stop-cmd and --broker-start-cmd, or neither\n";
    return 2;
  }
  if (o.enrol.empty() != o.enrol_token_file.empty()) {
    std::cerr << "postwatch-sim: give both --enrol and --enrol-token-file, or neither\n";
    return 2;
  }
  if (!o.identity_dir.empty() && o.enrol.empty()) {
    std::cerr << "postwatch-sim: --identity-dir is for --enrol\n";
    return 2;
  }
  if (BatchCompression c; !parse_batch_compression(o.compression, c)) {
    std::cerr << "postwatch-sim: --compression must be none, zstd or zstd-dictionary\n";
    return 2;
  }
  if (!o.fleet_keys.empty() && !o.processes) {
    std::cerr << "postwatch-sim: --fleet-keys is for --processes (in-process agents do not take fleet bundles)\n";
    return 2;
  }
  if (!o.fleet_keys.empty() && !std::filesystem::is_regular_file(o.fleet_keys)) {
    std::cerr << "postwatch-sim: --fleet-keys " << o.fleet_keys << ": no such file\n";
    return 2;
  }
  if (!o.work_dir.empty() && !o.processes) {
    std::cerr << "postwatch-sim: --work-dir is for --processes\n";
    return 2;
  }
  return o;
}

void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

// Every agent holds a socket, and through the relay three: lift the soft limit as far as allowed.
void raise_open_file_limit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
}

// A short tag unique to this run: the start time in seconds, base 36.
std::string run_tag() {
  auto t = static_cast<std::uint64_t>(now_utc_ms() / 1000);
  std::string tag;
  for (; t > 0; t /= 36) tag.insert(tag.begin(), "0123456789abcdefghijklmnopqrstuvwxyz"[t % 36]);
  return tag;
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

void log_progress(spdlog::logger& log, const sim::Fleet& fleet, double elapsed_s) {
  auto t = fleet.totals();
  log.info("{:.0f} s: events accepted {} sent {} confirmed {} rejected {} | agents connected {}/{} | backlog {}",
           elapsed_s, t.accepted, t.sent, t.confirmed, t.rejected, t.connected, t.agents, t.backlog);
}

// Ticks the world and plays the timeline until the duration is up or a signal arrives.
void run_loop(sim::Simulation& world, sim::ScenarioRunner& timeline, const sim::Fleet& fleet, spdlog::logger& log,
              double duration_s) {
  auto start = Clock::now();
  auto last_tick = start, next_progress = start + kProgressEvery;
  timeline.advance(0, now_utc_ms());
  world.report_all(now_utc_ms());
  while (!g_stop && (duration_s == 0 || seconds_since(start) < duration_s)) {
    std::this_thread::sleep_until(last_tick + kTick);
    auto now = Clock::now();
    timeline.advance(seconds_since(start), now_utc_ms());
    world.tick(std::chrono::duration<double>(now - last_tick).count(), now_utc_ms());
    last_tick = now;
    if (now >= next_progress) {
      log_progress(log, fleet, seconds_since(start));
      next_progress += kProgressEvery;
    }
  }
}

int list(const Options& o, const IndicatorCatalogue& catalogue) {
  auto all = sim::list_scenarios(o.scenario_dir, catalogue);
  if (all.empty()) {
    std::cerr << "postwatch-sim: no scenario files (*.json) in " << o.scenario_dir << "\n";
    return 1;
  }
  std::size_t width = 0;
  for (const auto& s : all) width = std::max(width, s.name.size());
  int status = 0;
  for (const auto& s : all) {
    if (!s.error.empty()) {
      std::cerr << "postwatch-sim: " << s.error << "\n";
      status = 1;
      continue;
    }
    std::cout << s.name << std::string(width + 2 - s.name.size(), ' ') << s.description << "\n";
  }
  return status;
}

// The catalogue positions of the fleet's posts, or an error message.
std::variant<std::vector<std::uint32_t>, std::string> fleet_posts(const Options& o, const IndicatorCatalogue& catalogue,
                                                                  const sim::Scenario& scenario) {
  std::size_t pool = scenario.posts.empty() ? catalogue.posts_of_kind(PostKind::Post).size() : scenario.posts.size();
  std::string whose = scenario.posts.empty() ? "the catalogue has " : "scenario " + scenario.name + " allows ";
  auto required = scenario.named_posts();
  std::size_t n = o.posts == 0 ? pool : o.posts;
  if (n > pool) return "--posts " + std::to_string(n) + ": " + whose + std::to_string(pool) + " posts";
  if (n < required.size()) {
    std::string names;
    for (auto p : required) names += (names.empty() ? "" : ", ") + catalogue.posts()[p].id;
    return "--posts " + std::to_string(n) + ": scenario " + scenario.name + " names " +
           std::to_string(required.size()) + " posts in its steps (" + names + "); it needs at least that many";
  }
  std::mt19937_64 rng(o.seed);
  return sim::choose_posts(catalogue, scenario.posts, required, n, rng);
}

int run(const Options& o, const std::shared_ptr<spdlog::sinks::sink>& sink,
        const std::shared_ptr<spdlog::logger>& log) {
  std::shared_ptr<const IndicatorCatalogue> catalogue;
  try {
    catalogue = std::make_shared<const IndicatorCatalogue>(IndicatorCatalogue::load(o.catalogue));
  } catch (const CatalogueError& e) {
    std::cerr << "postwatch-sim: catalogue error: " << e.what() << "\n";
    return 2;
  }
  if (o.list_scenarios) return list(o, *catalogue);

  auto file = sim::scenario_file(o.scenario, o.scenario_dir);
  if (file.parent_path() == fs::path(o.scenario_dir) && !fs::exists(file)) {
    std::cerr << "postwatch-sim: no scenario '" << o.scenario << "' in " << o.scenario_dir
              << " (--list-scenarios shows them; a file path works too)\n";
    return 2;
  }
  sim::Scenario scenario;
  try {
    scenario = sim::load_scenario(file, *catalogue);
  } catch (const sim::ScenarioError& e) {
    std::cerr << "postwatch-sim: scenario error: " << e.what() << "\n";
    return 2;
  }
  auto chosen = fleet_posts(o, *catalogue, scenario);
  if (auto* why = std::get_if<std::string>(&chosen)) {
    std::cerr << "postwatch-sim: " << *why << "\n";
    return 2;
  }
  const auto& posts = std::get<std::vector<std::uint32_t>>(chosen);
  std::size_t agent_count = posts.size() * o.agents_per_post;

  bool broker_commands = !o.broker_stop_cmd.empty();
  std::unique_ptr<sim::UplinkRelay> relay;
  std::unique_ptr<sim::BrokerControl> broker;
  // --broker a,b,c: every agent connects to a, and to b, then c when a connect fails.
  std::vector<std::string> brokers;
  for (std::size_t at = 0; at <= o.broker.size();) {
    auto comma = std::min(o.broker.find(',', at), o.broker.size());
    if (comma > at) brokers.push_back(o.broker.substr(at, comma - at));
    at = comma + 1;
  }
  if (brokers.empty()) {
    std::cerr << "postwatch-sim: --broker names no broker\n";
    return 2;
  }
  try {
    if (sim::ScenarioRunner::needs_relay(scenario) && brokers.size() > 1) {
      std::cerr << "postwatch-sim: scenario " << scenario.name
                << " cuts agents' uplinks through a relay to one broker; give --broker a single URI\n";
      return 2;
    }
    if (sim::ScenarioRunner::needs_relay(scenario))
      relay = std::make_unique<sim::UplinkRelay>(o.broker, agent_count, log);
  } catch (const std::invalid_argument& e) {
    std::cerr << "postwatch-sim: scenario " << scenario.name << " cuts agents' uplinks, and " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "postwatch-sim: " << e.what() << "\n";
    return 1;
  }
  if (broker_commands) broker = std::make_unique<sim::BrokerControl>(o.broker_stop_cmd, o.broker_start_cmd, log);

  std::string tag = run_tag();
  BatchCompression compression{};
  parse_batch_compression(o.compression, compression);  // checked by parse_options
  std::vector<sim::AgentSpec> specs;
  for (auto p : posts)
    for (std::size_t k = 0; k < o.agents_per_post; ++k) {
      auto n = std::to_string(specs.size() + 1);
      const auto& post_id = catalogue->posts()[p].id;
      // Once per agent at start: readable beats the saved allocations.
      // NOLINTBEGIN(performance-inefficient-string-concatenation)
      specs.push_back({"sim-" + n + "-" + tag,
                       post_id,
                       relay ? relay->uri(specs.size()) : brokers.front(),
                       std::vector<std::string>(brokers.begin() + 1, brokers.end()),
                       "sim-" + n + "/" + post_id,
                       {},
                       compression,
                       o.fleet_keys});
      // NOLINTEND(performance-inefficient-string-concatenation)
    }
  std::optional<TempIdentityDir> identities;
  if (!o.enrol.empty()) {
    try {
      identities.emplace(o.identity_dir);
      sim::enrol_fleet(specs, *catalogue, o.catalogue,
                       {o.enrol, read_secret_file(o.enrol_token_file), identities->path()}, *log);
    } catch (const std::exception& e) {
      std::cerr << "postwatch-sim: " << e.what() << "\n";
      return 1;
    }
  }
  std::unique_ptr<sim::Fleet> fleet;
  try {
    if (o.processes)
      fleet = std::make_unique<sim::ProcessFleet>(
          catalogue, specs, sim::ProcessFleetOptions{o.agent_binary, o.catalogue, o.work_dir}, log);
    else
      fleet = std::make_unique<sim::InProcessFleet>(catalogue, o.catalogue, specs, o.quiet, sink);
  } catch (const std::exception& e) {
    std::cerr << "postwatch-sim: " << e.what() << "\n";
    return 2;
  }

  sim::Simulation world(
      *catalogue, posts,
      {o.rate, o.seed, o.agents_per_post, scenario.background_episodes, scenario.standing_concerns, !o.quiet}, *fleet,
      log);
  sim::ScenarioRunner timeline(scenario, *catalogue, world, relay.get(), broker.get(), log);
  if (!o.quiet)
    for (std::size_t i = 0; i < posts.size(); ++i) log->info("{}", world.describe(i));
  // tools/run-demo reads the description from the first of these lines for its banner.
  log->info("scenario {} ({}): {}", scenario.name, file.string(), scenario.description);
  log->info("scenario {}: {} step(s) over {:.0f} s{}; random episodes {}, standing concerns {}", scenario.name,
            scenario.steps.size(), scenario.length_s(),
            scenario.repeat_every_s > 0 ? fmt::format(", again every {:.0f} s", scenario.repeat_every_s) : "",
            scenario.background_episodes ? "on" : "off", scenario.standing_concerns ? "on" : "off");
  log->info("{} posts × {} agent(s) {}, {} events/s each ({} events/s in all), seed {}, broker {}", posts.size(),
            o.agents_per_post, o.processes ? "as postwatch-agent processes" : "in-process", o.rate,
            o.rate * static_cast<double>(agent_count), o.seed, o.broker);

  fleet->start();
  // Separate processes start one by one on a busy machine: give them longer.
  auto connect_timeout = std::chrono::milliseconds(kConnectTimeout) +
                         std::chrono::milliseconds(o.processes ? 50 * static_cast<std::int64_t>(agent_count) : 0);
  if (!fleet->wait_connected(connect_timeout, g_stop)) {
    auto why = fleet->last_error();
    fleet->drain_and_stop(std::chrono::milliseconds(0));
    if (g_stop) return 0;
    std::cerr << "postwatch-sim: not every agent connected to the MQTT broker at " << o.broker << " within "
              << std::chrono::duration_cast<std::chrono::seconds>(connect_timeout).count() << " s"
              << (why.empty() ? "" : " (" + why + ")") << "\n";
    return 1;
  }
  log->info("all {} agents connected", fleet->size());

  auto start = Clock::now();
  run_loop(world, timeline, *fleet, *log, o.duration_s);
  timeline.finish();
  log->info("stopping: waiting up to {} s for the backlog to be confirmed", o.drain_s);
  bool drained =
      fleet->drain_and_stop(std::chrono::milliseconds(static_cast<std::int64_t>(std::max(0.0, o.drain_s) * 1000)));
  auto t = fleet->totals();
  // sent counts every PUBACK, resends after a reconnect included; confirmed is what left the spools.
  log->info("done after {:.1f} s: events accepted {} sent {} confirmed {} rejected {}{}", seconds_since(start),
            t.accepted, t.sent, t.confirmed, t.rejected, drained ? "" : fmt::format(", {} never confirmed", t.backlog));
  if (auto stuck = fleet->stuck_agents(); !stuck.empty()) {
    std::string ids;
    for (std::size_t i = 0; i < stuck.size() && i < 5; ++i) ids += (i ? ", " : "") + stuck[i];
    log->error(
        "{} agent(s) did not stop ({}{}): a connect to the broker that never returns holds them, a known "
        "agent problem (docs/simulator.md); exiting without them",
        stuck.size(), ids, stuck.size() > 5 ? ", ..." : "");
    log->flush();
    std::_Exit(1);  // destructors would wait for those agents' threads
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  auto parsed = parse_options(argc, argv);
  if (auto* code = std::get_if<int>(&parsed)) return *code;
  const Options& o = std::get<Options>(parsed);

  install_signal_handlers();
  std::signal(SIGPIPE, SIG_IGN);  // a relayed or piped peer that went away is an error code, not our end
  raise_open_file_limit();
  // One sink for the simulator's and every agent's logger, so lines never interleave.
  auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  sink->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%n] %v");
  auto log = std::make_shared<spdlog::logger>("sim", sink);
  return run(o, sink, log);
}
