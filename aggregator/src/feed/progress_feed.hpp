// Strategy progress over MQTT: retained JSON snapshots, the whole list on
// postwatch/v1/feed/progress and each goal's on postwatch/v1/feed/progress/goals/<goal>
// (docs/topics.md). Computed again when the store commits a new ministry reading, and every
// hour (a milestone becomes overdue with time alone); sent only when a body changed.
#pragma once

#include "progress/target_catalogue.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <string>

namespace postwatch {
class IndicatorCatalogue;
}

namespace postwatch::aggregator {

class EventStore;

// Sends a retained message.
using ProgressPublish = std::function<void(const std::string& topic, std::string body)>;

class ProgressFeed {
 public:
  ProgressFeed(const IndicatorCatalogue& catalogue, const TargetCatalogue& targets, EventStore& store,
               ProgressPublish publish);
  // On the io_context, every board tick; `publisher`: this instance sends the feed.
  void tick(std::int64_t now_ms, bool publisher);

 private:
  const IndicatorCatalogue& catalogue_;
  const TargetCatalogue& targets_;
  EventStore& store_;
  ProgressPublish publish_;
  std::uint64_t readings_seen_ = 0;
  std::int64_t computed_at_ms_ = 0;
  bool was_publisher_ = false;
  std::map<std::string, std::string> sent_;  // topic -> the body last sent
};

}  // namespace postwatch::aggregator
