// postwatch-bench-cluster: scale-out on NATS JetStream (docs/scale-out.md), each figure next
// to a baseline measured in the same run. Three phases:
//   throughput  events/s applied by 1, 2 and 3 postwatch-aggregator processes clustered on a
//               3-node NATS cluster (load through its MQTT listeners), against one plain
//               instance on Mosquitto fed the same load; each process's CPU and RSS, the busiest
//   takeover    3 instances under a steady load: SIGKILL one, time until every partition it held
//               is held by a survivor and applies events again; restart it, time until it holds
//               its partitions again; several kills, p50/p99/max
//   ceiling     QoS 1 messages/s, one Paho publisher -> broker -> one Paho subscriber: Mosquitto,
//               a 1-node and a 3-node NATS cluster (MQTT listener)
// Prints tables (optionally JSON); never asserts timing. See README.md.
//
// The load comes from this process (Paho, QoS 1, a few connections with a bounded window), not
// from the aggregators' processes, so the aggregators' CPU figures are theirs alone. The ceiling
// publisher is a child process (this binary, `ceiling-publisher` mode), so it does not share
// Paho's library threads with the subscriber.
//
// Files: cluster_bench_support (timing, /proc, brokers, log scan, options), cluster_bench_aggregators
// (the aggregator processes and the load), one per phase (declared in cluster_bench_phases.hpp),
// and this one: the options, the run and its summary.
#include "cluster_bench_phases.hpp"
#include "postwatch/catalogue.hpp"

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace postwatch;
using namespace postwatch::bench;

namespace {

const char* const kUsage =
    R"(postwatch-bench-cluster: scale-out on NATS JetStream, each figure against a baseline of the same run

usage: postwatch-bench-cluster [--quick] [--phases LIST] [--seconds S] [--connections N] [--window N]
                               [--lease-ms MS] [--kills N] [--steady-rate MSGS] [--ceiling-messages N]
                               [--ceiling-bytes N] [--ceiling-window N] [--json FILE] [--logs DIR]
  --phases LIST         comma-separated subset of throughput,takeover,ceiling (default all three)
  --seconds S           throughput: publishing time per configuration (default 6; --quick 3)
  --connections N       publisher MQTT connections, spread over the brokers' listeners (default 4)
  --window N            unacknowledged QoS 1 messages per connection (default 8, the agent's default)
  --lease-ms MS         the aggregators' --lease-ms (default 2000)
  --kills N             takeover: SIGKILLs, each followed by a restart (default 20; --quick 3)
  --steady-rate MSGS    takeover: load in messages/s of 100 events (default: half of what 3
                        instances reached in the throughput phase; 500 without it)
  --ceiling-messages N  ceiling: messages per broker (default 50000; --quick 10000)
  --ceiling-bytes N     ceiling: payload bytes per message (default 200)
  --ceiling-window N    ceiling: the publisher's unacknowledged QoS 1 messages (default 32)
  --quick               CI-scale numbers in under ~3 minutes
  --json FILE           also write every figure as JSON to FILE
  --logs DIR            keep the aggregators' and NATS nodes' logs of each configuration in DIR
  --help                this text
Phases: throughput (1 plain instance on Mosquitto, then 1, 2, 3 clustered instances on a
3-node NATS cluster, each on a fresh cluster), takeover (3 instances, SIGKILL one at a time
under a steady load, restart it), ceiling (QoS 1 through Mosquitto, 1-node and 3-node NATS).
Starts its own Mosquitto and nats-server processes on 127.0.0.1 (free ports) and
build/aggregator/postwatch-aggregator processes, and stops them again (also on SIGINT).
)";

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "ceiling-publisher") return ceiling_publisher_main(argc, argv);
  std::signal(SIGINT, [](int) { g_stop = true; });
  std::signal(SIGTERM, [](int) { g_stop = true; });
  Options opt;
  try {
    bool seconds_given = false, kills_given = false, ceiling_given = false;
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto value = [&] {
        if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
        return std::string(argv[++i]);
      };
      if (a == "--help" || a == "-h") return std::cout << kUsage, 0;
      if (a == "--quick") {
        opt.quick = true;
      } else if (a == "--phases") {
        opt.phases.clear();
        std::stringstream in(value());
        for (std::string p; std::getline(in, p, ',');) {
          if (p != "throughput" && p != "takeover" && p != "ceiling")
            throw std::invalid_argument("unknown phase '" + p + "'");
          opt.phases.insert(p);
        }
      } else if (a == "--seconds") {
        opt.seconds = std::stod(value()), seconds_given = true;
        if (!(opt.seconds > 0 && opt.seconds <= 120)) throw std::invalid_argument("--seconds must be in (0, 120]");
      } else if (a == "--connections") {
        opt.connections = std::clamp<std::size_t>(std::stoul(value()), 1, 64);
      } else if (a == "--window") {
        opt.window = std::clamp<std::size_t>(std::stoul(value()), 1, 1000);
      } else if (a == "--lease-ms") {
        opt.lease_ms = std::clamp<std::int64_t>(std::stoll(value()), 300, 60'000);
      } else if (a == "--kills") {
        opt.kills = std::clamp<std::size_t>(std::stoul(value()), 1, 1000), kills_given = true;
      } else if (a == "--steady-rate") {
        opt.steady_rate = std::stod(value());
        if (!(opt.steady_rate > 0)) throw std::invalid_argument("--steady-rate must be positive");
      } else if (a == "--ceiling-messages") {
        opt.ceiling_messages = std::clamp<std::size_t>(std::stoul(value()), 100, 10'000'000), ceiling_given = true;
      } else if (a == "--ceiling-bytes") {
        opt.ceiling_bytes = std::clamp<std::size_t>(std::stoul(value()), 8, 1 << 20);
      } else if (a == "--ceiling-window") {
        opt.ceiling_window = std::clamp<std::size_t>(std::stoul(value()), 1, 1000);
      } else if (a == "--json") {
        opt.json_file = value();
      } else if (a == "--logs") {
        opt.logs_dir = value();
      } else {
        throw std::invalid_argument("unknown argument '" + a + "'");
      }
    }
    if (opt.quick && !seconds_given) opt.seconds = 3;
    if (opt.quick && !kills_given) opt.kills = 3;
    if (opt.quick && !ceiling_given) opt.ceiling_messages = 10'000;
  } catch (const std::exception& e) {
    std::cerr << "postwatch-bench-cluster: " << e.what() << "\n" << kUsage;
    return 2;
  }

  try {
    const fs::path binary = test::binary_dir() / "aggregator" / "postwatch-aggregator";
    if (!fs::exists(binary))
      throw std::runtime_error(binary.string() + " is missing: build it with `cmake --build " +
                               test::binary_dir().string() + " --target postwatch-aggregator`");
    const auto wall0 = Clock::now();
    const std::string load0 = load_average();
    const auto catalogue = IndicatorCatalogue::load(test::catalogue_path());
    const EventMaker maker(catalogue);
    const double cores = std::max(1u, std::thread::hardware_concurrency());

    std::vector<RunFigures> runs;
    std::optional<TakeoverFigures> takeover;
    std::vector<CeilingFigures> ceilings;
    // A phase that fails ends the run, but the phases before it still print: minutes of figures.
    std::string phase, failed;
    try {
      phase = "throughput";
      if (opt.phases.count(phase)) runs = phase_throughput(opt, binary, maker);
      phase = "takeover";
      if (opt.phases.count(phase)) {
        double rate = opt.steady_rate;
        if (rate <= 0) rate = runs.empty() ? 500 : 0.5 * runs.back().messages_per_s;
        takeover = phase_takeover(opt, binary, maker, rate);
      }
      phase = "ceiling";
      if (opt.phases.count(phase)) ceilings = phase_ceiling(opt);
    } catch (const std::exception& e) {
      if (g_stop) throw;
      failed = phase + ": " + e.what();
    }

    const std::string load1 = load_average();
    std::printf(
        "postwatch-bench-cluster%s: %.0f core(s), load average %s at start, %s at the end; %.0f s in all; lease "
        "%lld ms, %u partitions\n",
        opt.quick ? " --quick" : "", cores, load0.substr(0, load0.find(' ')).c_str(),
        load1.substr(0, load1.find(' ')).c_str(), seconds_between(wall0, Clock::now()),
        static_cast<long long>(opt.lease_ms), opt.partitions);
    if (!runs.empty()) print_throughput(runs, cores, opt, catalogue.posts().size());
    if (takeover) print_takeover(*takeover);
    if (!ceilings.empty()) print_ceiling(ceilings, opt);
    if (!failed.empty())
      std::printf("\nThe %s phase FAILED (stderr says why); the phases after it did not run.\n", phase.c_str());
    if (!opt.json_file.empty()) {
      json out{{"benchmark", "postwatch-bench-cluster"},
               {"options", opt},
               {"cores", cores},
               {"load_average_start", load0},
               {"load_average_end", load1}};
      out["wall_seconds"] = seconds_between(wall0, Clock::now());
      out["throughput"] = runs;
      out["takeover"] = takeover ? json(*takeover) : json();
      out["ceiling"] = ceilings;
      out["failed"] = failed.empty() ? json() : json(failed);
      std::ofstream(opt.json_file) << out.dump(2) << "\n";
    }
    if (!failed.empty()) {
      std::cerr << "postwatch-bench-cluster: " << failed << "\n";
      return 1;
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "postwatch-bench-cluster: " << e.what() << "\n";
    return g_stop ? 130 : 1;
  }
}
