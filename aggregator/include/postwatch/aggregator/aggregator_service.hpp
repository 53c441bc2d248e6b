// The aggregator as one object on one io_context: MQTT ingest → IndicatorState →
// GoalRollup → HTTP feed. main() and the tests both run it this way.
#pragma once

#include "postwatch/catalogue.hpp"

#include <boost/asio/io_context.hpp>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

namespace spdlog {
class logger;
}

namespace postwatch::aggregator {

struct AggregatorOptions {
  std::string broker_uri = "tcp://127.0.0.1:1883";
  std::string client_id = "postwatch-aggregator";
  std::string http_address = "127.0.0.1";
  unsigned short http_port = 8080;                    // 0 picks a free port
  std::filesystem::path data_dir = "postwatch-data";  // SQLite store; survives restarts
  std::int64_t tick_ms = 250;                         // how often statuses and alarms are re-evaluated
  std::int64_t min_duration_ms = 30'000;              // a new goal status must hold this long
  std::int64_t allowed_lateness_ms = 10 * 60 * 1000;
  std::int64_t history_interval_ms = 60'000;  // a history point per goal/pillar at least this often
  double hysteresis_band = 0.1;
  double min_coverage = 0.5;
  int missed_heartbeats = 3;
  bool publish_snapshots = true;  // retained goal/pillar JSON on postwatch/v1/feed/...
};

class AggregatorService {
 public:
  AggregatorService(boost::asio::io_context& io, AggregatorOptions options,
                    std::shared_ptr<const IndicatorCatalogue> catalogue, std::shared_ptr<spdlog::logger> log);
  ~AggregatorService();

  // Binds the HTTP port (throws if it cannot) and starts connecting to the broker.
  void start();
  void stop();
  unsigned short http_port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace postwatch::aggregator
