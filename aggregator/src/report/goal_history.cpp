#include "report/goal_history.hpp"

#include <algorithm>

namespace postwatch::aggregator {

std::string_view to_string(BoardState s) {
  switch (s) {
    case BoardState::Green: return "green";
    case BoardState::Amber: return "amber";
    case BoardState::Red: return "red";
    case BoardState::Unknown: return "unknown";
    case BoardState::Unrecorded: break;
  }
  return "unrecorded";
}

BoardState board_state_of(std::string_view status) {
  if (status == "green") return BoardState::Green;
  if (status == "amber") return BoardState::Amber;
  if (status == "red") return BoardState::Red;
  return BoardState::Unknown;
}

namespace {

// Which state a strip cell shows when it holds several: the one that needs attention most.
int severity(BoardState s) {
  switch (s) {
    case BoardState::Red: return 4;
    case BoardState::Amber: return 3;
    case BoardState::Unknown: return 2;
    case BoardState::Green: return 1;
    case BoardState::Unrecorded: break;
  }
  return 0;
}

bool degraded(BoardState s) { return s == BoardState::Amber || s == BoardState::Red; }

}  // namespace

GoalHistoryBuilder::GoalHistoryBuilder(std::int64_t from_ms, std::int64_t to_ms) : from_ms_(from_ms), to_ms_(to_ms) {
  out_.strip.assign(kStripCells, BoardState::Unrecorded);
}

void GoalHistoryBuilder::add(const HistorySample& point) {
  if (!have_last_) {
    cover(from_ms_, point.at_ms, BoardState::Unrecorded);
  } else {
    const auto held_until = last_.at_ms + kHistoryPointHoldsMs;
    cover(last_.at_ms, std::min(point.at_ms, held_until), last_.state);
    cover(held_until, point.at_ms, BoardState::Unrecorded);
  }
  last_ = point;
  have_last_ = true;
}

GoalHistorySummary GoalHistoryBuilder::finish() {
  if (have_last_) {
    const auto held_until = last_.at_ms + kHistoryPointHoldsMs;
    cover(last_.at_ms, std::min(to_ms_, held_until), last_.state);
    cover(held_until, to_ms_, BoardState::Unrecorded);
  } else {
    cover(from_ms_, to_ms_, BoardState::Unrecorded);
  }
  close_episode();
  out_.episodes = episodes_.size();
  // Red before amber, then the longest, then the earliest: the same store gives the same list.
  std::sort(episodes_.begin(), episodes_.end(), [](const StatusEpisode& a, const StatusEpisode& b) {
    if (a.worst != b.worst) return a.worst == BoardState::Red;
    if (a.duration_ms() != b.duration_ms()) return a.duration_ms() > b.duration_ms();
    return a.start_ms < b.start_ms;
  });
  if (episodes_.size() > kWorstEpisodes) episodes_.resize(kWorstEpisodes);
  out_.worst_episodes = std::move(episodes_);
  return std::move(out_);
}

// Counts [start_ms, end_ms) as `state`, clipped to the period. Called with consecutive spans.
void GoalHistoryBuilder::cover(std::int64_t start_ms, std::int64_t end_ms, BoardState state) {
  start_ms = std::max(start_ms, from_ms_);
  end_ms = std::min(end_ms, to_ms_);
  if (end_ms <= start_ms) return;
  out_.time_ms[static_cast<std::size_t>(state)] += end_ms - start_ms;

  const auto length = to_ms_ - from_ms_;
  const auto cells = static_cast<std::int64_t>(kStripCells);
  const auto first = (start_ms - from_ms_) * cells / length;
  const auto last = ((end_ms - from_ms_) * cells + length - 1) / length;  // one past, rounded up
  for (auto c = first; c < std::min(last, cells); ++c) {
    auto& cell = out_.strip[static_cast<std::size_t>(c)];
    if (severity(state) > severity(cell)) cell = state;
  }

  if (!degraded(state)) {
    close_episode();
    return;
  }
  if (!in_episode_) {
    in_episode_ = true;
    episode_ = StatusEpisode{start_ms, end_ms, state, false};
  }
  episode_.end_ms = end_ms;
  if (state == BoardState::Red) episode_.worst = BoardState::Red;
}

void GoalHistoryBuilder::close_episode() {
  if (!in_episode_) return;
  episode_.ongoing = episode_.end_ms == to_ms_;
  episodes_.push_back(episode_);
  in_episode_ = false;
}

}  // namespace postwatch::aggregator
