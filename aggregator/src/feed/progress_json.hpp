// Strategy progress as JSON: GET /api/v1/targets, GET /api/v1/goals/{id}/progress and the
// retained snapshots on postwatch/v1/feed/progress (docs/strategy-progress.md, "The API").
// Every target carries the data behind its status: baseline, readings, target and the figures.
#pragma once

#include "postwatch/catalogue.hpp"
#include "progress/strategy_progress.hpp"
#include "store/event_store.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace postwatch::aggregator {

// The store's readings by indicator.
ReadingSeries reading_series(const std::vector<StrategyReadingRow>& rows);

// The period a progress request asks for: ?at= (the moment assessed; default now) and ?from=
// (the start of the trends; default two years before `at`), each a date YYYY-MM-DD or UTC
// milliseconds. nullopt and `error` set when one does not parse or from is after at. The
// report calls `at` "to" (`at_name`).
struct ProgressPeriod {
  std::int64_t from_ms = 0, at_ms = 0;
};
constexpr std::int64_t kDefaultProgressPeriodMs = 2 * static_cast<std::int64_t>(kMsPerYear);
std::optional<ProgressPeriod> parse_progress_period(const std::optional<std::string>& from,
                                                    const std::optional<std::string>& at, std::int64_t now_ms,
                                                    std::string& error, const std::string& at_name = "at");

nlohmann::json target_json(const TargetAssessment& a);
nlohmann::json counts_json(const ProgressCounts& c);
// Every target, with the counts overall, per goal and per result area.
nlohmann::json targets_json(const StrategyProgress& p, const IndicatorCatalogue& catalogue);
// One goal's targets and counts; `operational` (the goal's board snapshot) goes beside them.
nlohmann::json goal_progress_json(const StrategyProgress& p, const Goal& goal, nlohmann::json operational);

}  // namespace postwatch::aggregator
