// The ministry's figures in a cluster (docs/strategy-progress.md, docs/scale-out.md): the
// ministry's events reach only the instance that holds its partition, so only that instance's
// store would hold them, and the others (the leader, which sends the progress feed, among them)
// would show no data. Each figure its store commits is shared in the board bucket under
// figure.<indicator>.<observed_at_ms>; every instance keeps what the others shared in its own
// store. A body already known is neither shared nor kept again, so sharing never echoes.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace spdlog {
class logger;
}

namespace postwatch::aggregator {

class EventStore;
class JetStreamCluster;
struct StrategyReadingRow;

class SharedFigures {
 public:
  explicit SharedFigures(spdlog::logger& log) : log_(log) {}
  // On the io_context, every tick.
  void tick(JetStreamCluster& cluster, EventStore& store);

  static std::string key_of(const StrategyReadingRow& r);
  static std::string body_of(const StrategyReadingRow& r);

 private:
  spdlog::logger& log_;
  std::map<std::string, std::string> known_;  // key -> body, shared or merged
  std::uint64_t checked_ = UINT64_MAX;        // store readings committed when last shared; MAX: never
};

}  // namespace postwatch::aggregator
