// The progress report's pictures, as inline SVG: a target's chart and a goal's status strip.
// Colours are written into the SVG itself, so a picture reads the same wherever it is pasted.
// No xmlns: the HTML parser gives inline <svg> its namespace, and the report names no URL at all.
#pragma once

#include "progress/strategy_progress.hpp"
#include "report/goal_history.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace postwatch::aggregator::report {

// The colour of a board state, for paper (darker than the dashboard's wall-screen colours).
std::string_view state_colour(BoardState s);

// The baseline (a ring), the readings (dots joined), the target (a dashed line) and the straight
// path to it from the baseline (or the first reading), with the report's period shaded.
std::string target_chart_svg(const TargetAssessment& a, std::int64_t from_ms, std::int64_t to_ms);

// The period from left to right, each cell coloured by the worst state the goal showed in it.
std::string status_strip_svg(const GoalHistorySummary& history, int goal);

}  // namespace postwatch::aggregator::report
