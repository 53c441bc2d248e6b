// The operations-centre JSON API (/api/v1/...), rendered from the aggregator's
// state. Every response is JSON; errors carry {"error": {"status", "message"}}.
#pragma once

#include "feed/http_server.hpp"
#include "ingest/batch_ingest.hpp"
#include "postwatch/catalogue.hpp"
#include "rollup/goal_rollup.hpp"
#include "rollup/indicator_state.hpp"

#include <cstdint>
#include <functional>

namespace postwatch::aggregator {

class ApiRoutes {
 public:
  ApiRoutes(const IndicatorCatalogue& catalogue, const IndicatorState& state, const BatchIngest& ingest,
            const GoalRollup& rollup, std::function<bool()> ready);
  HttpResponse handle(const HttpRequest& req);

  // The current roll-up, recomputed only when the state changed.
  const RollupSnapshot& snapshot();

 private:
  const IndicatorCatalogue& catalogue_;
  const IndicatorState& state_;
  const BatchIngest& ingest_;
  const GoalRollup& rollup_;
  std::function<bool()> ready_;
  RollupSnapshot snapshot_;
  bool have_snapshot_ = false;
};

}  // namespace postwatch::aggregator
