#include "simulator_run.hpp"

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
#include "postwatch/secret_file.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>
#include <random>
#include <thread>
#include <variant>

namespace postwatch::sim {
namespace {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr auto kTick = std::chrono::milliseconds(100);
constexpr auto kProgressEvery = std::chrono::seconds(5);
constexpr auto kConnectTimeout = std::chrono::seconds(10);

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

// A short tag unique to this run: the start time in seconds, base 36.
std::string run_tag() {
  auto t = static_cast<std::uint64_t>(now_utc_ms() / 1000);
  std::string tag;
  for (; t > 0; t /= 36) tag.insert(tag.begin(), "0123456789abcdefghijklmnopqrstuvwxyz"[t % 36]);
  return tag;
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

void log_progress(spdlog::logger& log, const Fleet& fleet, double elapsed_s) {
  auto t = fleet.totals();
  log.info("{:.0f} s: events accepted {} sent {} confirmed {} rejected {} | agents connected {}/{} | backlog {}",
           elapsed_s, t.accepted, t.sent, t.confirmed, t.rejected, t.connected, t.agents, t.backlog);
}

// Ticks the world and plays the timeline until the duration is up or a signal arrives.
void run_loop(Simulation& world, ScenarioRunner& timeline, const Fleet& fleet, spdlog::logger& log, double duration_s,
              const std::atomic<bool>& stop) {
  auto start = Clock::now();
  auto last_tick = start, next_progress = start + kProgressEvery;
  timeline.advance(0, now_utc_ms());
  world.report_all(now_utc_ms());
  while (!stop && (duration_s == 0 || seconds_since(start) < duration_s)) {
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
  auto all = list_scenarios(o.scenario_dir, catalogue);
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
                                                                  const Scenario& scenario) {
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
  return choose_posts(catalogue, scenario.posts, required, n, rng);
}

}  // namespace

int run_simulator(const Options& o, const std::shared_ptr<spdlog::sinks::sink>& sink,
                  const std::shared_ptr<spdlog::logger>& log, const std::atomic<bool>& stop) {
  std::shared_ptr<const IndicatorCatalogue> catalogue;
  try {
    catalogue = std::make_shared<const IndicatorCatalogue>(IndicatorCatalogue::load(o.catalogue));
  } catch (const CatalogueError& e) {
    std::cerr << "postwatch-sim: catalogue error: " << e.what() << "\n";
    return 2;
  }
  if (o.list_scenarios) return list(o, *catalogue);

  auto file = scenario_file(o.scenario, o.scenario_dir);
  if (file.parent_path() == fs::path(o.scenario_dir) && !fs::exists(file)) {
    std::cerr << "postwatch-sim: no scenario '" << o.scenario << "' in " << o.scenario_dir
              << " (--list-scenarios shows them; a file path works too)\n";
    return 2;
  }
  Scenario scenario;
  try {
    scenario = load_scenario(file, *catalogue);
  } catch (const ScenarioError& e) {
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
  std::unique_ptr<UplinkRelay> relay;
  std::unique_ptr<BrokerControl> broker;
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
    if (ScenarioRunner::needs_relay(scenario) && brokers.size() > 1) {
      std::cerr << "postwatch-sim: scenario " << scenario.name
                << " cuts agents' uplinks through a relay to one broker; give --broker a single URI\n";
      return 2;
    }
    if (ScenarioRunner::needs_relay(scenario)) relay = std::make_unique<UplinkRelay>(o.broker, agent_count, log);
  } catch (const std::invalid_argument& e) {
    std::cerr << "postwatch-sim: scenario " << scenario.name << " cuts agents' uplinks, and " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "postwatch-sim: " << e.what() << "\n";
    return 1;
  }
  if (broker_commands) broker = std::make_unique<BrokerControl>(o.broker_stop_cmd, o.broker_start_cmd, log);

  std::string tag = run_tag();
  BatchCompression compression{};
  parse_batch_compression(o.compression, compression);  // checked by parse_options
  std::vector<AgentSpec> specs;
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
      enrol_fleet(specs, *catalogue, o.catalogue, {o.enrol, read_secret_file(o.enrol_token_file), identities->path()},
                  *log);
    } catch (const std::exception& e) {
      std::cerr << "postwatch-sim: " << e.what() << "\n";
      return 1;
    }
  }
  std::unique_ptr<Fleet> fleet;
  try {
    if (o.processes)
      fleet = std::make_unique<ProcessFleet>(catalogue, specs,
                                             ProcessFleetOptions{o.agent_binary, o.catalogue, o.work_dir}, log);
    else
      fleet = std::make_unique<InProcessFleet>(catalogue, o.catalogue, specs, o.quiet, sink);
  } catch (const std::exception& e) {
    std::cerr << "postwatch-sim: " << e.what() << "\n";
    return 2;
  }

  Simulation world(
      *catalogue, posts,
      {o.rate, o.seed, o.agents_per_post, scenario.background_episodes, scenario.standing_concerns, !o.quiet}, *fleet,
      log);
  ScenarioRunner timeline(scenario, *catalogue, world, relay.get(), broker.get(), log);
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
  if (!fleet->wait_connected(connect_timeout, stop)) {
    auto why = fleet->last_error();
    fleet->drain_and_stop(std::chrono::milliseconds(0));
    if (stop) return 0;
    std::cerr << "postwatch-sim: not every agent connected to the MQTT broker at " << o.broker << " within "
              << std::chrono::duration_cast<std::chrono::seconds>(connect_timeout).count() << " s"
              << (why.empty() ? "" : " (" + why + ")") << "\n";
    return 1;
  }
  log->info("all {} agents connected", fleet->size());

  auto start = Clock::now();
  run_loop(world, timeline, *fleet, *log, o.duration_s, stop);
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

}  // namespace postwatch::sim
