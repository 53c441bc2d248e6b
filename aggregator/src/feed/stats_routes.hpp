// /api/v1/stats (JSON) and /metrics (Prometheus text): both render one table of figures
// (feed/figures.hpp), so their names stay in step. docs/operations.md, "Metrics", lists them.
#pragma once

#include "feed/feed_sources.hpp"
#include "feed/figure_registry.hpp"
#include "feed/http_helpers.hpp"

namespace postwatch::aggregator {

class StatsRoutes {
 public:
  // Reads the board (statuses, alarms, silent posts), ingest and delivery, and the desks
  // (keys, rollouts, commands) when rendered; they must outlive it.
  StatsRoutes(const BoardReads& board, const DeliveryFigures& delivery, const OperatorDesks& desks);
  HttpResponse stats() const;
  HttpResponse metrics() const;

 private:
  FigureRegistry figures_;
};

}  // namespace postwatch::aggregator
