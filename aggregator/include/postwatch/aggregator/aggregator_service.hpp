// The aggregator as one object on one io_context: MQTT ingest → IndicatorState →
// GoalRollup → HTTP feed. main() and the tests both run it this way.
#pragma once

#include "postwatch/aggregator/aggregator_options.hpp"
#include "postwatch/catalogue.hpp"

#include <boost/asio/io_context.hpp>

#include <functional>
#include <memory>
#include <string>

namespace spdlog {
class logger;
}

namespace postwatch::aggregator {

class TargetCatalogue;

class AggregatorService {
 public:
  // Throws std::invalid_argument for a configuration it refuses (options_problem, the tokens
  // file, TLS files, an open API on a non-loopback address), std::runtime_error when the store
  // cannot open.
  // `targets`: the strategy's targets (docs/strategy-progress.md); null: none.
  AggregatorService(boost::asio::io_context& io, AggregatorOptions options,
                    std::shared_ptr<const IndicatorCatalogue> catalogue, std::shared_ptr<spdlog::logger> log,
                    std::shared_ptr<const TargetCatalogue> targets = nullptr);
  ~AggregatorService();

  // Binds the HTTP port (throws if it cannot) and starts connecting to the broker.
  void start();
  // Stops listening and ingesting, sends live-stream clients a close frame, flushes the store.
  void stop();
  unsigned short http_port() const;
  bool tls() const;
  // Live-stream clients still connected (they leave once they answer the close frame).
  std::size_t stream_clients() const;
  // Called on the io_context once a catalogue from a rollout was adopted (written to
  // <data_dir>/catalogues): the aggregator must restart on it (main re-executes itself). Unset,
  // catalogue rollouts that need a new catalogue are refused.
  void on_catalogue_adopted(std::function<void()> restart);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace postwatch::aggregator
