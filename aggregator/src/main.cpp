// postwatch-aggregator: consumes agents' events and serves goal-level indicators.
#include "command_line.hpp"
#include "ingest/mqtt_ingest.hpp"
#include "postwatch/aggregator/aggregator_service.hpp"
#include "progress/target_catalogue.hpp"
#include "rollouts/catalogue_adoption.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <iostream>
#include <optional>

using namespace postwatch;
using aggregator::CommandLine;

namespace {

struct Catalogues {
  std::shared_ptr<const IndicatorCatalogue> indicators;
  std::shared_ptr<const aggregator::TargetCatalogue> targets;
};

std::shared_ptr<spdlog::logger> make_log(const std::string& level) {
  auto log = spdlog::stderr_color_mt("aggregator");
  log->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%n] %v");
  log->set_level(spdlog::level::from_str(level));
  return log;
}

// The installed catalogue (--catalogue), or a newer one adopted from a fleet rollout
// (docs/fleet.md, "A new indicator") while it keeps all of the installed one. Sets
// cl.options.catalogue_file to the file used; nullopt after printing why none loads.
std::optional<Catalogues> load_catalogues(CommandLine& cl, spdlog::logger& log) {
  std::string& catalogue_file = cl.catalogue_file;
  auto& opts = cl.options;
  Catalogues out;
  if (catalogue_file.empty()) catalogue_file = default_catalogue_path().string();
  try {
    out.indicators = std::make_shared<const IndicatorCatalogue>(IndicatorCatalogue::load(catalogue_file));
    // The strategy's targets are checked at start like the rest (docs/strategy-progress.md).
    out.targets = std::make_shared<const aggregator::TargetCatalogue>(
        aggregator::TargetCatalogue::load(catalogue_file, *out.indicators));
  } catch (const CatalogueError& e) {
    std::cerr << "postwatch-aggregator: catalogue error: " << e.what() << "\n";
    return std::nullopt;
  }
  std::string note;
  const auto adopted = aggregator::AdoptedCatalogues(opts.data_dir / "catalogues").choose(*out.indicators, note);
  if (!note.empty()) log.warn("{}", note);
  if (!adopted.empty()) {
    try {
      auto next = std::make_shared<const IndicatorCatalogue>(IndicatorCatalogue::load(adopted));
      out.targets =
          std::make_shared<const aggregator::TargetCatalogue>(aggregator::TargetCatalogue::load(adopted, *next));
      log.info("catalogue_version {} adopted from a fleet rollout ({}) replaces the installed {} ({})", next->version(),
               adopted.string(), out.indicators->version(), catalogue_file);
      out.indicators = std::move(next);
      catalogue_file = adopted.string();
    } catch (const CatalogueError& e) {
      log.warn("the catalogue adopted from a fleet rollout ({}) is refused: {}; using the installed one",
               adopted.string(), e.what());
    }
  }
  opts.catalogue_file = catalogue_file;
  log.info("catalogue {}: {} goals, {} posts (and {} ministry), {} indicators, {} strategy targets", catalogue_file,
           out.indicators->goals().size(), out.indicators->posts_of_kind(PostKind::Post).size(),
           out.indicators->posts_of_kind(PostKind::Ministry).size(), out.indicators->indicators().size(),
           out.targets->targets().size());
  return out;
}

void warn_about_plaintext(const aggregator::AggregatorOptions& opts, spdlog::logger& log) {
  for (const auto& u : aggregator::split_broker_uris(opts.broker_uri))
    if (u.starts_with("tcp://") || u.starts_with("mqtt://"))
      if (u.find("127.0.0.1") == std::string::npos && u.find("localhost") == std::string::npos)
        log.warn(
            "plaintext MQTT to {}: events and passwords cross the network unencrypted; use ssl:// with "
            "--broker-ca",
            u);
}

// Runs the service until SIGINT/SIGTERM (exit 0), or until it adopted a catalogue: then it
// starts again in the same process, so systemd's unit and a supervisor see no exit.
int run(char** argv, const aggregator::AggregatorOptions& opts, const Catalogues& catalogues,
        const std::shared_ptr<spdlog::logger>& log) {
  boost::asio::io_context io(1);
  // Installed before the service opens its store and its broker connection: a SIGTERM that
  // arrives while either is under way waits here and stops the service once it is up, rather
  // than killing the process with the default action (exit 143).
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  std::unique_ptr<aggregator::AggregatorService> service;
  try {
    service = std::make_unique<aggregator::AggregatorService>(io, opts, catalogues.indicators, log, catalogues.targets);
  } catch (const std::invalid_argument& e) {
    std::cerr << "postwatch-aggregator: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "postwatch-aggregator: " << e.what() << "\n";
    return 1;
  }
  try {
    service->start();
  } catch (const std::exception& e) {
    std::cerr << "postwatch-aggregator: cannot listen on " << opts.http_address << ":" << opts.http_port << ": "
              << e.what() << "\n";
    return 1;
  }
  const std::string base =
      (service->tls() ? "https://" : "http://") + opts.http_address + ":" + std::to_string(service->http_port());
  log->info("HTTP API at {}/api/v1/goals, dashboard at {}/", base, base);
  boost::asio::steady_timer drain(io);
  std::function<void(std::chrono::steady_clock::time_point)> wait_for_streams =
      [&](std::chrono::steady_clock::time_point deadline) {
        if (service->stream_clients() == 0 || std::chrono::steady_clock::now() >= deadline) return io.stop();
        drain.expires_after(std::chrono::milliseconds(10));
        drain.async_wait([&, deadline](const boost::system::error_code&) { wait_for_streams(deadline); });
      };
  signals.async_wait([&](const boost::system::error_code&, int sig) {
    log->info("signal {}: shutting down", sig);
    service->stop();
    // Live-stream clients got a close frame; give them a moment to answer it.
    wait_for_streams(std::chrono::steady_clock::now() + std::chrono::seconds(2));
  });
  bool restart = false;
  service->on_catalogue_adopted([&] {
    log->info("restarting on the adopted catalogue");
    restart = true;
    signals.cancel();
    service->stop();
    wait_for_streams(std::chrono::steady_clock::now() + std::chrono::seconds(2));
  });
  io.run();
  if (!restart) {
    log->info("stopped");
    return 0;
  }
  // Everything the old run opened is closed first (the store, the listening socket, the broker's).
  service.reset();
  log->flush();
  ::close_range(3, ~0U, 0);
  ::execv("/proc/self/exe", argv);
  std::cerr << "postwatch-aggregator: cannot restart itself: " << std::strerror(errno) << "; start it again\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  auto parsed = aggregator::parse_command_line(argc, argv);
  if (const int* exit_status = std::get_if<int>(&parsed)) return *exit_status;
  auto& cl = std::get<CommandLine>(parsed);
  auto log = make_log(cl.log_level);
  const auto catalogues = load_catalogues(cl, *log);
  if (!catalogues) return 2;
  warn_about_plaintext(cl.options, *log);
  return run(argv, cl.options, *catalogues, log);
}
