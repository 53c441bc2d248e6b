#include "feed/progress_feed.hpp"

#include "feed/progress_json.hpp"
#include "feed/snapshot_json.hpp"
#include "postwatch/catalogue.hpp"
#include "postwatch/topics.hpp"
#include "store/event_store.hpp"

namespace postwatch::aggregator {

ProgressFeed::ProgressFeed(const IndicatorCatalogue& catalogue, const TargetCatalogue& targets, EventStore& store,
                           ProgressPublish publish)
    : catalogue_(catalogue), targets_(targets), store_(store), publish_(std::move(publish)) {}

void ProgressFeed::tick(std::int64_t now_ms, bool publisher) {
  if (!publisher || targets_.targets().empty()) {
    was_publisher_ = false;
    return;
  }
  const auto readings = store_.strategy_readings_committed();
  const bool due = !was_publisher_ || readings != readings_seen_ || now_ms - computed_at_ms_ >= 3'600'000;
  if (!due) return;
  was_publisher_ = true;
  readings_seen_ = readings;
  computed_at_ms_ = now_ms;
  const auto p = assess_strategy(targets_, reading_series(store_.query_strategy_readings()),
                                 now_ms - kDefaultProgressPeriodMs, now_ms);
  auto send = [&](const std::string& topic, nlohmann::json j) {
    // Sent when the figures changed, not because the moment assessed did.
    j.erase("at_ms");
    j.erase("from_ms");
    std::string body = dump_json(j);
    auto& last = sent_[topic];
    if (body == last) return;
    last = body;
    publish_(topic, std::move(body));
  };
  send(topics::progress_feed(), targets_json(p, catalogue_));
  for (std::size_t g = 0; g < catalogue_.goals().size(); ++g) {
    const Goal& goal = catalogue_.goals()[g];
    if (!p.by_goal.count(goal.id)) continue;
    // The goal's operational status has its own feed (postwatch/v1/feed/goals/<goal>).
    auto j = goal_progress_json(p, goal, nullptr);
    j.erase("operational");
    send(topics::goal_progress_feed(goal.id), std::move(j));
  }
}

}  // namespace postwatch::aggregator
