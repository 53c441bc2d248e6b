// The simulated numbers of one post. Every indicator is modelled in severity units
// (0 = the catalogue's baseline, 1 = its red threshold: the scale the aggregator
// scores on), so one mean-reverting process serves levels, counts, gauges and shares
// alike; to_value() maps a severity back to the indicator's own unit.
//
// Counts are the exception: a count event carries the events observed since the
// post last reported (the aggregator sums them over the indicator's window), and
// this calm world has none, so counts report 0. A counted incident would stay in
// the window for an hour to a week, far longer than a demo's episodes.
#pragma once

#include "postwatch/catalogue.hpp"

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace postwatch::sim {

enum class Alert : std::uint8_t { Green = 0, Amber = 1, Red = 2 };

// The aggregator's threshold rule, repeated here so the model can aim at a colour.
Alert classify(const Indicator& ind, double value);

// The value a post reports at severity `s`: clamped to [min, max]; levels, counts and
// booleans are whole numbers truncated towards the baseline (so faint noise reads as
// "nothing happened"), gauges whole numbers, shares one decimal.
double to_value(const Indicator& ind, double s);

// A severity whose reported value shows `want`, with a margin so the noise around it
// does not flip the colour every few seconds. Booleans have no amber: they go red.
double severity_for(const Indicator& ind, Alert want);

class PostSignals {
 public:
  PostSignals(const IndicatorCatalogue& catalogue, std::uint64_t seed);

  // A standing concern at this post: the indicator rests at `level` instead of the baseline.
  void raise_posture(std::uint32_t indicator, Alert level);
  // Drives the indicator towards `level` until `end_ms`, then lets it decay back.
  void start_episode(std::uint32_t indicator, Alert level, std::int64_t end_ms);
  // Advances every indicator by `dt_s` seconds of mean reversion and noise.
  void advance(double dt_s, std::int64_t now_ms);

  // Up to `n` numeric indicators to report now: those whose value changed noticeably
  // since they were last reported come first, a random choice of the others fills up.
  std::vector<std::uint32_t> pick(std::size_t n);
  const std::vector<std::uint32_t>& numeric_indicators() const { return numeric_; }
  double value(std::uint32_t indicator) const;
  void mark_reported(std::uint32_t indicator, double value);
  // For what the agent measures itself (its spool depth): a value set from outside,
  // not modelled.
  void set_measured(std::uint32_t indicator, double value);

  void queue_note(std::string text) { note_ = std::move(text); }
  bool note_pending() const { return note_.has_value(); }
  std::optional<std::string> take_note();

  std::vector<std::uint32_t> raised() const;  // indicators with a standing concern
  std::mt19937_64& rng() { return rng_; }

 private:
  struct Track {
    double severity = 0;
    double posture = 0;  // where it rests in calm times
    double target = 0;   // the posture, or an episode's peak while it lasts
    std::int64_t episode_end_ms = 0;
    std::optional<double> last_reported;
    std::optional<double> measured;
  };
  bool changed_noticeably(std::uint32_t indicator) const;
  void step(const Indicator& ind, Track& t, double dt_s, std::int64_t now_ms);

  const IndicatorCatalogue& catalogue_;
  std::vector<Track> tracks_;           // one per catalogue indicator (text ones unused)
  std::vector<std::uint32_t> numeric_;  // indicators that carry numbers
  std::optional<std::string> note_;
  std::mt19937_64 rng_;
  std::normal_distribution<double> normal_{0.0, 1.0};
};

}  // namespace postwatch::sim
