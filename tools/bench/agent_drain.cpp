// postwatch-bench-agent: how fast the agent fills and drains its disk spool, what
// it costs in memory and CPU (plaintext and encrypted spool side by side), and how
// that compares with a bare Paho publisher pushing the same payloads through the
// same broker. Prints figures (a table on stdout, optionally JSON); it never
// asserts timing. See tools/bench/README.md.
#include "agent_drain/phases.hpp"
#include "postwatch/clock.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

namespace {
using namespace postwatch;
using namespace postwatch::bench;
using namespace postwatch::bench::agent_drain;

constexpr const char* kUsage =
    R"(postwatch-bench-agent — spool fill (plaintext and encrypted), drain, agent RSS/CPU and a plain-Paho baseline

usage: postwatch-bench-agent [--events N] [--batch N] [--inflight N] [--json FILE] [--quick]
  --events N    events to spool and drain (default 1000000)
  --batch N     the agent's batch max_events and the baseline's batch size (default 500)
  --inflight N  in-flight batches, agent and baseline (default: AgentConfig's, 8)
  --json FILE   also write the figures as one JSON object to FILE
  --quick       100000 events, for smoke runs
Starts its own Mosquitto and postwatch-agent on 127.0.0.1 and stops them again.
)";

std::uint64_t parse_count(const std::string& opt, const char* value, std::uint64_t lo, std::uint64_t hi) {
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(value, &end, 10);
  if (errno != 0 || end == value || *end != '\0' || v < lo || v > hi)
    throw std::invalid_argument(opt + " must be a whole number between " + std::to_string(lo) + " and " +
                                std::to_string(hi));
  return v;
}

// The options, or the exit code when the program should end right away.
std::optional<Options> parse_options(int argc, char** argv, int& exit_code) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      std::cout << kUsage;
      exit_code = 0;
      return std::nullopt;
    } else if (a == "--events") {
      o.events = parse_count(a, value(), 1, 100'000'000);
    } else if (a == "--batch") {
      o.batch = parse_count(a, value(), 1, WireLimits::max_events_per_batch);
    } else if (a == "--inflight") {
      o.inflight = parse_count(a, value(), 1, 1000);
    } else if (a == "--json") {
      o.json_file = value();
    } else if (a == "--quick") {
      o.events = 100'000;
    } else {
      throw std::invalid_argument("unknown argument '" + a + "'");
    }
  }
  return o;
}

int run(const Options& opt) {
  Context c;
  c.opt = opt;
  c.report.config("events", opt.events);
  c.report.config("batch_max_events", opt.batch);
  c.report.config("max_inflight_batches", opt.inflight);
  c.report.config("cpus", std::thread::hardware_concurrency());
  c.report.config("started_at_ms", now_utc_ms());

  phase_fill(c);
  phase_fill_encrypted(c);

  std::cerr << "starting mosquitto and the subscriber...\n";
  test::MosquittoBroker broker("", /*persistent=*/false);
  const std::string broker_pid = find_child("mosquitto");
  Subscriber sub(broker.uri());
  const double drain_rate = phase_drain(c, sub, broker.uri(), broker_pid);
  phase_child(c, sub, broker.uri());
  const double baseline_rate = phase_baseline(c, sub, broker.uri(), broker_pid);
  c.report.section("summary", "summary");
  c.report.add("drain_to_baseline", "agent drain rate / baseline rate",
               baseline_rate > 0 ? drain_rate / baseline_rate : 0, "", 2);

  std::cout << "postwatch-bench-agent: " << opt.events << " events, batch " << opt.batch << ", in-flight "
            << opt.inflight << ", " << std::thread::hardware_concurrency() << " CPUs, broker " << broker.uri()
            << "\n\n";
  return c.finish("postwatch-bench-agent", opt.json_file);
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  try {
    int code = 2;
    auto opt = parse_options(argc, argv, code);
    if (!opt) return code;
    return run(*opt);
  } catch (const std::invalid_argument& e) {
    std::cerr << "postwatch-bench-agent: " << e.what() << "\n" << kUsage;
    return 2;
  } catch (const Interrupted&) {
    std::cerr << "postwatch-bench-agent: interrupted; stopped every process it started\n";
    return 130;
  } catch (const std::exception& e) {
    std::cerr << "postwatch-bench-agent: " << e.what() << "\n";
    return 1;
  }
}
