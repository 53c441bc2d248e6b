// One goal's operational picture over a report's period, from the store's history points: the
// time in each board status, the worst amber or red episodes and a strip of the whole period
// (docs/strategy-progress.md, "The progress report"). Pure, like GoalRollup: fed the points
// in time order, it needs nothing of the store.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace postwatch::aggregator {

// What the board showed, or Unrecorded: no history point says (the aggregator was not running,
// or the history was pruned).
enum class BoardState : std::uint8_t { Green, Amber, Red, Unknown, Unrecorded };
inline constexpr std::size_t kBoardStates = 5;
std::string_view to_string(BoardState s);  // "green", "amber", "red", "unknown", "unrecorded"
// A history row's status ("green", "amber", "red", "unknown"); Unknown for anything else.
BoardState board_state_of(std::string_view status);

struct HistorySample {
  std::int64_t at_ms = 0;
  BoardState state = BoardState::Unknown;
};

// A point holds until the next one, for at most this long. The aggregator writes one every
// minute (and on every change), so a longer silence is time it did not record.
inline constexpr std::int64_t kHistoryPointHoldsMs = 5 * 60'000;

inline constexpr std::size_t kWorstEpisodes = 5;  // listed per goal
inline constexpr std::size_t kStripCells = 240;   // the strip's resolution over the period

// An unbroken run of amber or red (one episode even if it went from amber to red and back).
struct StatusEpisode {
  std::int64_t start_ms = 0, end_ms = 0;  // clipped to the period
  BoardState worst = BoardState::Amber;   // Red if it reached red
  bool ongoing = false;                   // still amber or red when the period ends
  std::int64_t duration_ms() const { return end_ms - start_ms; }
};

struct GoalHistorySummary {
  std::array<std::int64_t, kBoardStates> time_ms{};  // per BoardState; adds up to the period
  std::size_t episodes = 0;                          // amber or red episodes in the period
  std::vector<StatusEpisode> worst_episodes;         // at most kWorstEpisodes: red first, then longest
  std::vector<BoardState> strip;                     // kStripCells cells, each the worst state in it
  std::int64_t time_in(BoardState s) const { return time_ms[static_cast<std::size_t>(s)]; }
};

// Builds the summary from the points, in time order, without holding them: a two-year period
// has a point a minute. Give it the points from kHistoryPointHoldsMs before the period on (the
// one that says how the period began) up to its end.
class GoalHistoryBuilder {
 public:
  GoalHistoryBuilder(std::int64_t from_ms, std::int64_t to_ms);
  void add(const HistorySample& point);
  GoalHistorySummary finish();

 private:
  void cover(std::int64_t start_ms, std::int64_t end_ms, BoardState state);
  void close_episode();

  std::int64_t from_ms_, to_ms_;
  bool have_last_ = false;
  HistorySample last_;
  bool in_episode_ = false;
  StatusEpisode episode_;
  std::vector<StatusEpisode> episodes_;
  GoalHistorySummary out_;
};

}  // namespace postwatch::aggregator
