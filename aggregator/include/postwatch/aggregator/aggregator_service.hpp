// The aggregator as one object on one io_context: MQTT ingest → IndicatorState →
// GoalRollup → HTTP feed. main() and the tests both run it this way.
#pragma once

#include "postwatch/catalogue.hpp"

#include <boost/asio/io_context.hpp>

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
  unsigned short http_port = 8080;  // 0 picks a free port
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
