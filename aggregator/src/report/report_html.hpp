// The parts of the report's HTML (internal to report/): a goal's section, shared words.
#pragma once

#include "report/progress_report.hpp"

#include <array>
#include <string>
#include <string_view>
#include <vector>

namespace postwatch::aggregator::report {

// "improving, too slowly" for too_slow: the dashboard's words for a target's status.
std::string_view status_words(std::string_view status);
// The interim report's headings: "Positive results", "Lagging", "Moved away", ...
std::string_view result_heading(ResultKind k);
// The CSS class of a kind of result's colour: green, amber, red, impossible, unknown.
std::string_view result_colour(ResultKind k);

// The board states in the order the report lists them, and their headings ("No record" for
// Unrecorded).
inline constexpr std::array<BoardState, kBoardStates> kBoardStateOrder{
    BoardState::Green, BoardState::Amber, BoardState::Red, BoardState::Unknown, BoardState::Unrecorded};
std::string state_heading(BoardState s);

// Where a goal's section sits and what it shows.
struct GoalSection {
  const Goal* goal = nullptr;
  std::string anchor;  // the element id: "<area>-goal-<n>"
  std::vector<const TargetAssessment*> targets;
  // Empty: show the operational picture here. Otherwise the anchor and title of the section
  // that shows it (a goal under several result areas shows it once).
  std::string picture_anchor, picture_title;
};

std::string goal_section_html(const ProgressReport& report, const GoalSection& section);

// One line about a goal's period: "green 92.1 %, amber 2.0 %, red 0.5 %; 3 alarms".
std::string operations_line(const ProgressReport& report, int goal);

}  // namespace postwatch::aggregator::report
