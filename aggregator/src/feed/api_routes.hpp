// The operations-centre JSON API (/api/v1/...), rendered from the aggregator's
// state. Every response is JSON; errors carry {"error": {"status", "message"}}.
#pragma once

#include "feed/http_server.hpp"
#include "ingest/agent_presence.hpp"
#include "ingest/batch_ingest.hpp"
#include "postwatch/catalogue.hpp"
#include "rollup/goal_rollup.hpp"
#include "rollup/indicator_state.hpp"

#include <cstdint>
#include <functional>

namespace postwatch::aggregator {

// What the API reads; all of it lives on the io_context thread.
struct FeedSources {
  const IndicatorCatalogue& catalogue;
  const IndicatorState& state;
  const BatchIngest& ingest;
  const AgentPresence& presence;
  const GoalRollup& rollup;
  std::function<bool()> ready;
};

class ApiRoutes {
 public:
  explicit ApiRoutes(FeedSources sources);
  HttpResponse handle(const HttpRequest& req);

  // The current roll-up, recomputed only when the state changed.
  const RollupSnapshot& snapshot();

 private:
  HttpResponse agents();
  HttpResponse stats();

  FeedSources src_;
  const IndicatorCatalogue& catalogue_;
  const IndicatorState& state_;
  RollupSnapshot snapshot_;
  bool have_snapshot_ = false;
};

}  // namespace postwatch::aggregator
