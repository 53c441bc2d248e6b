#include "signal_model.hpp"

#include <algorithm>
#include <cmath>

namespace postwatch::sim {

namespace {

// Mean-reversion rates (1/s): calm drift takes tens of seconds, so an episode's
// decay stays visible on the board for a while; an episode's onset takes seconds.
constexpr double kCalmRate = 0.06;
constexpr double kEpisodeRate = 0.5;
// Stationary noise as a share of the distance from baseline to amber: about five
// standard deviations below amber, so a calm post practically never turns amber.
constexpr double kNoiseShareOfAmber = 0.18;
// A held level (standing concern, episode) is a judgement, not a measurement: quieter.
constexpr double kHeldNoiseFactor = 1.0 / 3.0;

bool is_discrete(ValueKind k) { return k == ValueKind::Level || k == ValueKind::Count || k == ValueKind::Boolean; }

// Severity of the amber threshold: where on the baseline..red scale amber starts.
double amber_severity(const Indicator& ind) {
  double span = ind.red - ind.baseline;
  return span == 0 ? 1.0 : (ind.amber - ind.baseline) / span;
}

// The smallest severity (in 0.01 steps) whose reported value shows at least `want`.
double first_severity_showing(const Indicator& ind, Alert want) {
  for (int k = 0; k <= 400; ++k) {
    double s = k * 0.01;
    if (classify(ind, to_value(ind, s)) >= want) return s;
  }
  return 4.0;
}

}  // namespace

Alert classify(const Indicator& ind, double v) {
  if (ind.direction == Direction::HigherIsWorse) {
    if (v >= ind.red) return Alert::Red;
    return v >= ind.amber ? Alert::Amber : Alert::Green;
  }
  if (v <= ind.red) return Alert::Red;
  return v <= ind.amber ? Alert::Amber : Alert::Green;
}

double to_value(const Indicator& ind, double s) {
  double v = ind.baseline + s * (ind.red - ind.baseline);
  if (is_discrete(ind.kind))
    v = ind.baseline + std::trunc(v - ind.baseline);
  else if (ind.kind == ValueKind::Share)
    v = std::round(v * 10.0) / 10.0;
  else
    v = std::round(v);
  return std::clamp(v, ind.min, ind.max);
}

double severity_for(const Indicator& ind, Alert want) {
  if (want == Alert::Green) return 0;
  double amber = first_severity_showing(ind, Alert::Amber);
  double red = first_severity_showing(ind, Alert::Red);
  // Amber sits midway between the two thresholds; where they coincide (booleans)
  // there is no amber value, so the indicator goes red.
  if (want == Alert::Amber && red - amber >= 0.05) return (amber + red) / 2;
  return red + 0.2;
}

PostSignals::PostSignals(const IndicatorCatalogue& catalogue, std::uint64_t seed)
    : catalogue_(catalogue), tracks_(catalogue.indicators().size()), rng_(seed) {
  for (std::uint32_t i = 0; i < catalogue.indicators().size(); ++i)
    if (catalogue.indicators()[i].on_board()) numeric_.push_back(i);  // not text, not ministry figures
}

void PostSignals::raise_posture(std::uint32_t indicator, Alert level) {
  Track& t = tracks_.at(indicator);
  t.posture = severity_for(catalogue_.indicators()[indicator], level);
  t.severity = t.posture;
  if (t.episode_end_ms == 0) t.target = t.posture;
}

void PostSignals::start_episode(std::uint32_t indicator, Alert level, std::int64_t end_ms) {
  Track& t = tracks_.at(indicator);
  // An episode never calms a post down: it aims at least at the standing concern.
  t.target = std::max(t.posture, severity_for(catalogue_.indicators()[indicator], level));
  t.episode_end_ms = end_ms;
}

void PostSignals::advance(double dt_s, std::int64_t now_ms) {
  for (std::uint32_t i : numeric_)
    if (!tracks_[i].measured && catalogue_.indicators()[i].kind != ValueKind::Count)
      step(catalogue_.indicators()[i], tracks_[i], dt_s, now_ms);
}

void PostSignals::step(const Indicator& ind, Track& t, double dt_s, std::int64_t now_ms) {
  bool in_episode = t.episode_end_ms != 0;
  if (in_episode && now_ms >= t.episode_end_ms) {
    t.episode_end_ms = 0;
    t.target = t.posture;
    in_episode = false;
  }
  // Exact Ornstein-Uhlenbeck step: stable for any dt, stationary spread `sigma`.
  double a = std::exp(-(in_episode ? kEpisodeRate : kCalmRate) * dt_s);
  double sigma = kNoiseShareOfAmber * amber_severity(ind) * (t.target > 0 ? kHeldNoiseFactor : 1.0);
  t.severity = t.target + (t.severity - t.target) * a + sigma * std::sqrt(1 - a * a) * normal_(rng_);
}

double PostSignals::value(std::uint32_t indicator) const {
  const Track& t = tracks_.at(indicator);
  const Indicator& ind = catalogue_.indicators()[indicator];
  if (ind.kind == ValueKind::Count && !t.measured) return 0;  // no new events (see the header)
  return t.measured ? std::clamp(*t.measured, ind.min, ind.max) : to_value(ind, t.severity);
}

void PostSignals::set_measured(std::uint32_t indicator, double value) { tracks_.at(indicator).measured = value; }

void PostSignals::mark_reported(std::uint32_t indicator, double value) { tracks_.at(indicator).last_reported = value; }

bool PostSignals::changed_noticeably(std::uint32_t indicator) const {
  const Track& t = tracks_[indicator];
  if (!t.last_reported) return true;
  const Indicator& ind = catalogue_.indicators()[indicator];
  double now = value(indicator);
  if (is_discrete(ind.kind)) return now != *t.last_reported;
  // Gauges and shares wobble all the time; only a colour change or a move of a
  // tenth of the baseline-to-red distance is news.
  return classify(ind, now) != classify(ind, *t.last_reported) ||
         std::abs(now - *t.last_reported) >= std::abs(ind.red - ind.baseline) / 10;
}

std::vector<std::uint32_t> PostSignals::pick(std::size_t n) {
  std::vector<std::uint32_t> changed, others;
  for (std::uint32_t i : numeric_) (changed_noticeably(i) ? changed : others).push_back(i);
  std::shuffle(changed.begin(), changed.end(), rng_);
  std::shuffle(others.begin(), others.end(), rng_);
  changed.insert(changed.end(), others.begin(), others.end());
  if (changed.size() > n) changed.resize(n);
  return changed;
}

std::optional<std::string> PostSignals::take_note() {
  std::optional<std::string> n;
  n.swap(note_);
  return n;
}

std::vector<std::uint32_t> PostSignals::raised() const {
  std::vector<std::uint32_t> out;
  for (std::uint32_t i : numeric_)
    if (tracks_[i].posture > 0) out.push_back(i);
  return out;
}

}  // namespace postwatch::sim
