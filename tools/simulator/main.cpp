// postwatch-sim: a fleet of simulated posts, each publishing indicator events
// through the real agent code, so the aggregator's goal board has a world to show.
#include "fleet.hpp"
#include "scenario.hpp"
#include "simulation.hpp"

#include "postwatch/clock.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <boost/program_options.hpp>

#include <atomic>
#include <csignal>
#include <iostream>
#include <thread>
#include <variant>

#ifndef POSTWATCH_VERSION
#define POSTWATCH_VERSION "dev"
#endif

namespace {
using namespace postwatch;
namespace po = boost::program_options;
using Clock = std::chrono::steady_clock;

constexpr auto kTick = std::chrono::milliseconds(100);
constexpr auto kProgressEvery = std::chrono::seconds(5);
constexpr auto kConnectTimeout = std::chrono::seconds(10);
constexpr auto kDrainTimeout = std::chrono::seconds(3);

std::atomic<bool> g_stop{false};
static_assert(std::atomic<bool>::is_always_lock_free, "set from a signal handler");
void on_signal(int) { g_stop = true; }

struct Options {
  std::string broker = "tcp://127.0.0.1:1883";
  std::string catalogue = POSTWATCH_DEFAULT_CATALOGUE;
  std::size_t posts = 20;
  double rate = 2;
  double duration_s = 0;
  std::uint64_t seed = 1;
  bool quiet = false;
};

// The options, or the exit code when the program should end right away.
std::variant<Options, int> parse_options(int argc, char** argv) {
  Options o;
  po::options_description desc(
      "postwatch-sim — simulated posts publishing indicator events through the real agent code\n\noptions");
  desc.add_options()("help,h", "show this help")("version", "print the version")(
      "broker", po::value(&o.broker)->default_value(o.broker), "MQTT broker URI")(
      "catalogue", po::value(&o.catalogue)->default_value(o.catalogue), "indicator catalogue (JSON)")(
      "posts", po::value(&o.posts)->default_value(o.posts),
      "number of simulated posts (featured posts such as bamako, kyiv, moscow first, the rest drawn by seed)")(
      "rate", po::value(&o.rate)->default_value(o.rate), "events per second per post")(
      "duration", po::value(&o.duration_s)->default_value(o.duration_s), "seconds to run; 0 = until SIGINT/SIGTERM")(
      "seed", po::value(&o.seed)->default_value(o.seed), "random seed: same seed, same posts and episodes")(
      "quiet", po::bool_switch(&o.quiet), "no per-post lines, episode announcements or agent info logs");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "postwatch-sim: " << e.what() << "\n(see --help)\n";
    return 2;
  }
  if (vm.count("help")) {
    std::cout << desc << "\n";
    return 0;
  }
  if (vm.count("version")) {
    std::cout << "postwatch-sim " << POSTWATCH_VERSION << "\n";
    return 0;
  }
  if (!(o.rate > 0 && o.rate <= 100000) || !(o.duration_s >= 0) || o.posts == 0) {
    std::cerr << "postwatch-sim: need --posts >= 1, 0 < --rate <= 100000 and --duration >= 0\n";
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
  log.info("{:.0f} s: events accepted {} sent {} rejected {} | agents connected {}/{} | backlog {}", elapsed_s,
           t.accepted, t.sent, t.rejected, t.connected, t.agents, t.backlog);
}

// Ticks the world until the duration is up or a signal arrives.
void run_loop(sim::Simulation& world, const sim::Fleet& fleet, spdlog::logger& log, double duration_s) {
  auto start = Clock::now();
  auto last_tick = start, next_progress = start + kProgressEvery;
  world.report_all(now_utc_ms());
  while (!g_stop && (duration_s == 0 || seconds_since(start) < duration_s)) {
    std::this_thread::sleep_until(last_tick + kTick);
    auto now = Clock::now();
    world.tick(std::chrono::duration<double>(now - last_tick).count(), now_utc_ms());
    last_tick = now;
    if (now >= next_progress) {
      log_progress(log, fleet, seconds_since(start));
      next_progress += kProgressEvery;
    }
  }
}

int run(const Options& o, std::shared_ptr<spdlog::sinks::sink> sink, std::shared_ptr<spdlog::logger> log) {
  std::shared_ptr<const IndicatorCatalogue> catalogue;
  try {
    catalogue = std::make_shared<const IndicatorCatalogue>(IndicatorCatalogue::load(o.catalogue));
  } catch (const CatalogueError& e) {
    std::cerr << "postwatch-sim: catalogue error: " << e.what() << "\n";
    return 2;
  }
  if (o.posts > catalogue->posts().size()) {
    std::cerr << "postwatch-sim: --posts " << o.posts << ": the catalogue has " << catalogue->posts().size()
              << " posts\n";
    return 2;
  }
  std::mt19937_64 rng(o.seed);
  auto posts = sim::choose_posts(*catalogue, o.posts, rng);
  std::vector<std::string> post_ids;
  for (auto p : posts) post_ids.push_back(catalogue->posts()[p].id);

  sim::Fleet fleet(catalogue, {o.broker, run_tag(), o.catalogue, o.quiet}, post_ids, sink);
  sim::Simulation world(*catalogue, posts, {o.rate, o.seed, !o.quiet}, fleet, log);
  if (!o.quiet)
    for (std::size_t i = 0; i < posts.size(); ++i) log->info("{}", world.describe(i));
  log->info("{} posts, {} events/s each ({} events/s in all), seed {}, broker {}", posts.size(), o.rate,
            o.rate * static_cast<double>(posts.size()), o.seed, o.broker);

  fleet.start();
  if (!fleet.wait_connected(kConnectTimeout, g_stop)) {
    fleet.drain_and_stop(std::chrono::milliseconds(0));
    if (g_stop) return 0;
    auto why = fleet.last_error();
    std::cerr << "postwatch-sim: the MQTT broker at " << o.broker << " was not reachable for "
              << kConnectTimeout.count() << " s" << (why.empty() ? "" : " (" + why + ")") << "\n";
    return 1;
  }
  log->info("all {} agents connected", fleet.size());

  auto start = Clock::now();
  run_loop(world, fleet, *log, o.duration_s);
  log->info("stopping: waiting up to {} s for the broker to acknowledge the backlog", kDrainTimeout.count());
  bool drained = fleet.drain_and_stop(kDrainTimeout);
  auto t = fleet.totals();
  log->info("done after {:.1f} s: events accepted {} sent {} rejected {}{}", seconds_since(start), t.accepted, t.sent,
            t.rejected, drained ? "" : fmt::format(", {} never acknowledged", t.backlog));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  auto parsed = parse_options(argc, argv);
  if (auto* code = std::get_if<int>(&parsed)) return *code;
  const Options& o = std::get<Options>(parsed);

  install_signal_handlers();
  // One sink for the simulator's and every agent's logger, so lines never interleave.
  auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  sink->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%n] %v");
  auto log = std::make_shared<spdlog::logger>("sim", sink);
  return run(o, sink, log);
}
