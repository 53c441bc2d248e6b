// postwatch-aggregator: consumes agents' events and serves goal-level indicators.
#include "postwatch/aggregator/aggregator_service.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <boost/asio/signal_set.hpp>
#include <boost/program_options.hpp>

#include <iostream>

#ifndef POSTWATCH_VERSION
#define POSTWATCH_VERSION "dev"
#endif

namespace po = boost::program_options;
using namespace postwatch;

int main(int argc, char** argv) {
  aggregator::AggregatorOptions opts;
  std::string catalogue_file = POSTWATCH_DEFAULT_CATALOGUE;
  std::string log_level = "info";
  po::options_description desc(
      "postwatch-aggregator — consumes Postwatch agents' events over MQTT and serves goal-level indicators\n\noptions");
  desc.add_options()("help,h", "show this help")("version", "print the version")(
      "broker", po::value(&opts.broker_uri)->default_value(opts.broker_uri), "MQTT broker URI")(
      "client-id", po::value(&opts.client_id)->default_value(opts.client_id),
      "MQTT client id (stable, so the broker keeps messages while the aggregator restarts)")(
      "http-address", po::value(&opts.http_address)->default_value(opts.http_address), "HTTP listen address")(
      "http-port", po::value(&opts.http_port)->default_value(opts.http_port), "HTTP port (0 = any free port)")(
      "catalogue", po::value(&catalogue_file)->default_value(catalogue_file), "indicator catalogue (JSON)")(
      "log-level", po::value(&log_level)->default_value(log_level), "trace, debug, info, warn, error");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "postwatch-aggregator: " << e.what() << "\n(see --help)\n";
    return 2;
  }
  if (vm.count("help")) {
    std::cout << desc << "\n";
    return 0;
  }
  if (vm.count("version")) {
    std::cout << "postwatch-aggregator " << POSTWATCH_VERSION << " (wire schema v1)\n";
    return 0;
  }

  auto log = spdlog::stderr_color_mt("aggregator");
  log->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%n] %v");
  log->set_level(spdlog::level::from_str(log_level));

  std::shared_ptr<const IndicatorCatalogue> catalogue;
  try {
    catalogue = std::make_shared<const IndicatorCatalogue>(IndicatorCatalogue::load(catalogue_file));
  } catch (const CatalogueError& e) {
    std::cerr << "postwatch-aggregator: catalogue error: " << e.what() << "\n";
    return 2;
  }
  log->info("catalogue {}: {} goals, {} posts, {} indicators", catalogue_file, catalogue->goals().size(),
            catalogue->posts().size(), catalogue->indicators().size());

  boost::asio::io_context io(1);
  aggregator::AggregatorService service(io, opts, catalogue, log);
  try {
    service.start();
  } catch (const std::exception& e) {
    std::cerr << "postwatch-aggregator: cannot listen on " << opts.http_address << ":" << opts.http_port << ": "
              << e.what() << "\n";
    return 1;
  }
  log->info("HTTP API at http://{}:{}/api/v1/goals", opts.http_address, service.http_port());
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code&, int sig) {
    log->info("signal {}: shutting down", sig);
    service.stop();
    io.stop();
  });
  io.run();
  log->info("stopped");
  return 0;
}
