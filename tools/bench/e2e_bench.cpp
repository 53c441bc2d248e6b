// postwatch-bench-e2e: Postwatch over a real Mosquitto on loopback, against the
// broker's own ceiling. Prints figures (a table on stdout, optionally JSON); it
// never asserts timing. See tools/bench/README.md.
//
//   1. ceiling   Paho publisher -> Mosquitto -> plain Paho subscriber, QoS 1
//   2. e2e       the same publisher -> Mosquitto -> an in-process AggregatorService
//   3. latency   observed_at (creation) -> applied, per event, at fixed rates
//   4. scaling   10 .. 10 000 distinct agents: throughput and memory
//
// Phases run in the order 1, 4, 2, 3: scaling gets the first aggregator of the process,
// so its memory figures are not blurred by heap the e2e runs leave behind.
//
// The publishers run in a child process (this binary, `publisher` mode, driven over
// its stdin) so that they do not share Paho's library threads with the subscriber
// or the aggregator. `postwatch-bench-e2e collectd` compares collectd's mqtt plugin
// with postwatch-agent at the same event rate.
#include "e2e/collectd_mode.hpp"
#include "e2e/phases.hpp"
#include "e2e/publisher.hpp"

#include <csignal>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>

namespace {
using namespace postwatch::bench;
using namespace postwatch::bench::e2e;

const char* const kUsage = R"(postwatch-bench-e2e — broker ceiling, Postwatch end to end, latency, scaling

usage: postwatch-bench-e2e [--quick] [--seconds S] [--phases LIST] [--connections N] [--inflight N] [--json FILE]
       postwatch-bench-e2e collectd [--rate N] [--json FILE]
  --seconds S      target length of each throughput run (default 4; --quick 1.5)
  --phases LIST    comma-separated subset of ceiling,e2e,signed,latency,scaling (default all;
                   signed: enrolled agents' signed batches against unsigned, batch 10 and 100)
  --connections N  publisher MQTT connections (default 4)
  --inflight N     unacknowledged QoS 1 messages per connection (default 8, the agent's default)
  --json FILE      also write the figures as one JSON object to FILE
  collectd         collectd's mqtt plugin vs postwatch-agent run, both fed N events/s (default 100)
Starts its own Mosquitto on 127.0.0.1 (free port, temporary directory) and stops it again.
)";

Options parse_options(int argc, char** argv, int& exit_code, bool& exit_now) {
  Options o;
  bool seconds_given = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      std::cout << kUsage;
      exit_code = 0;
      exit_now = true;
      return o;
    } else if (a == "--quick") {
      o.quick = true;
    } else if (a == "--seconds") {
      o.seconds = std::stod(value());
      seconds_given = true;
      if (!(o.seconds > 0 && o.seconds <= 60)) throw std::invalid_argument("--seconds must be in (0, 60]");
    } else if (a == "--phases") {
      o.phases.clear();
      std::stringstream ss(value());
      for (std::string p; std::getline(ss, p, ',');) {
        if (p != "ceiling" && p != "e2e" && p != "signed" && p != "latency" && p != "scaling")
          throw std::invalid_argument("unknown phase '" + p + "'");
        o.phases.insert(p);
      }
    } else if (a == "--connections") {
      o.connections = std::clamp<std::size_t>(std::stoul(value()), 1, 64);
    } else if (a == "--inflight") {
      o.inflight = std::clamp<std::size_t>(std::stoul(value()), 1, 1000);
    } else if (a == "--json") {
      o.json_file = value();
    } else {
      throw std::invalid_argument("unknown argument '" + a + "'");
    }
  }
  if (o.quick && !seconds_given) o.seconds = 1.5;
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::signal(SIGPIPE, SIG_IGN);
  try {
    if (argc > 1 && std::string(argv[1]) == "publisher") return publisher_main(argc, argv);
    if (argc > 1 && std::string(argv[1]) == "collectd") return collectd_main(argc, argv);
    int code = 2;
    bool exit_now = false;
    auto opt = parse_options(argc, argv, code, exit_now);
    if (exit_now) return code;
    return run(opt);
  } catch (const std::invalid_argument& e) {
    std::cerr << "postwatch-bench-e2e: " << e.what() << "\n" << kUsage;
    return 2;
  } catch (const Interrupted&) {
    std::cerr << "postwatch-bench-e2e: interrupted; stopped every process it started\n";
    return 130;
  } catch (const std::exception& e) {
    std::cerr << "postwatch-bench-e2e: " << e.what() << "\n";
    return 1;
  }
}
