// What every post last reported for every indicator: a dense table indexed by
// the catalogue's post and indicator positions, so an update is an array write.
// Count indicators also keep a sliding-window sum by event time (CountWindow).
#pragma once

#include "postwatch/catalogue.hpp"
#include "postwatch/event.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace postwatch::aggregator {

struct Reading {
  double number = 0;
  std::int64_t observed_at_ms = 0;
  std::int64_t received_at_ms = 0;
  // Subtracted from the agent's observed_at because its clock was off (docs/aggregator.md,
  // "Time"); 0 when the time is as the agent sent it.
  std::int64_t clock_correction_ms = 0;
  bool present = false;
};

// Sum of counts observed in (now - window, now], in kBuckets buckets of window/kBuckets.
// The sum depends only on the set of events, not on their arrival order.
class CountWindow {
 public:
  static constexpr int kBuckets = 60;
  // Returns false when the event is older than the window can hold.
  bool add(std::int64_t observed_at_ms, double count, std::int64_t window_ms);
  double sum(std::int64_t now_ms, std::int64_t window_ms) const;
  // Non-empty buckets as (bucket id, sum), to hand a post's state to another instance.
  std::vector<std::pair<std::int64_t, double>> buckets() const;
  void restore(const std::vector<std::pair<std::int64_t, double>>& buckets);

 private:
  std::array<std::int64_t, kBuckets> bucket_id_{};  // id = observed_at / bucket width; 0 = empty
  std::array<double, kBuckets> sums_{};
};

// Everything IndicatorState knows about one post: what an aggregator instance hands to
// the instance that takes the post over (cluster/post_partial.hpp).
struct PostRows {
  struct Cell {
    std::uint32_t indicator = 0;
    Reading reading;
    std::string text;
  };
  struct Window {
    std::uint32_t indicator = 0;
    std::vector<std::pair<std::int64_t, double>> buckets;
  };
  std::int64_t last_seen_ms = 0;
  std::vector<Cell> cells;  // present readings only
  std::vector<Window> windows;
};

class IndicatorState {
 public:
  explicit IndicatorState(const IndicatorCatalogue& catalogue);

  // Keeps the reading with the latest observed_at (ties: the larger value), so the
  // result does not depend on arrival order; counts also go into their window.
  // Returns true when the state changed. `e.observed_at_ms` is already corrected by
  // `clock_correction_ms`, which the reading keeps to show.
  bool apply(std::uint32_t post, std::uint32_t indicator, const EventView& e, std::int64_t received_at_ms,
             std::int64_t clock_correction_ms = 0);
  // Marks a post as heard from (events or heartbeats) without changing readings.
  void touch(std::uint32_t post, std::int64_t received_at_ms);

  const Reading& at(std::uint32_t post, std::uint32_t indicator) const { return cells_[index(post, indicator)]; }
  // The value the roll-up uses: the window sum for counts, the latest reading otherwise.
  double value(std::uint32_t post, std::uint32_t indicator, std::int64_t now_ms) const;
  const std::string& text_at(std::uint32_t post, std::uint32_t indicator) const;
  std::int64_t post_last_seen_ms(std::uint32_t post) const { return last_seen_[post]; }
  std::uint64_t version() const { return version_; }
  PostRows export_post(std::uint32_t post) const;
  // Replaces everything held for the post with `rows`.
  void import_post(std::uint32_t post, const PostRows& rows);
  std::uint32_t post_count() const { return posts_; }
  std::uint32_t indicator_count() const { return indicators_; }

 private:
  std::size_t index(std::uint32_t post, std::uint32_t indicator) const {
    return static_cast<std::size_t>(post) * indicators_ + indicator;
  }
  const IndicatorCatalogue& catalogue_;
  std::uint32_t posts_, indicators_;
  std::vector<Reading> cells_;
  std::vector<std::int32_t> window_ix_;  // per indicator: slot in windows_ rows, -1 if not a count
  std::uint32_t count_indicators_ = 0;
  std::vector<CountWindow> windows_;  // [post][count indicator]
  std::vector<std::string> texts_;    // only filled for text indicators
  std::vector<std::int64_t> last_seen_;
  std::uint64_t version_ = 0;
};

}  // namespace postwatch::aggregator
