#include "rollup/indicator_state.hpp"

namespace postwatch::aggregator {

IndicatorState::IndicatorState(const IndicatorCatalogue& catalogue)
    : posts_(static_cast<std::uint32_t>(catalogue.posts().size())),
      indicators_(static_cast<std::uint32_t>(catalogue.indicators().size())),
      cells_(static_cast<std::size_t>(posts_) * indicators_),
      texts_(static_cast<std::size_t>(posts_) * indicators_),
      last_seen_(posts_, 0) {}

bool IndicatorState::apply(std::uint32_t post, std::uint32_t indicator, const EventView& e,
                           std::int64_t received_at_ms) {
  auto ix = static_cast<std::size_t>(post) * indicators_ + indicator;
  Reading& r = cells_[ix];
  if (received_at_ms > last_seen_[post]) last_seen_[post] = received_at_ms;
  if (r.present) {
    if (e.observed_at_ms < r.observed_at_ms) return false;
    if (e.observed_at_ms == r.observed_at_ms && e.number <= r.number && e.kind != ValueKind::Text) return false;
  }
  r.number = e.number;
  r.observed_at_ms = e.observed_at_ms;
  r.received_at_ms = received_at_ms;
  r.present = true;
  if (e.kind == ValueKind::Text) texts_[ix].assign(e.text);
  ++version_;
  return true;
}

const std::string& IndicatorState::text_at(std::uint32_t post, std::uint32_t indicator) const {
  return texts_[static_cast<std::size_t>(post) * indicators_ + indicator];
}

}  // namespace postwatch::aggregator
