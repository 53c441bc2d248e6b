// The latest reading of every indicator at every post: a dense table indexed by
// the catalogue's post and indicator positions, so an update is an array write.
#pragma once

#include "postwatch/catalogue.hpp"
#include "postwatch/event.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace postwatch::aggregator {

struct Reading {
  double number = 0;
  std::int64_t observed_at_ms = 0;
  std::int64_t received_at_ms = 0;
  bool present = false;
};

class IndicatorState {
 public:
  explicit IndicatorState(const IndicatorCatalogue& catalogue);

  // Keeps the reading with the latest observed_at (ties: the larger value), so the
  // result does not depend on arrival order. Returns true when the reading changed.
  bool apply(std::uint32_t post, std::uint32_t indicator, const EventView& e, std::int64_t received_at_ms);

  const Reading& at(std::uint32_t post, std::uint32_t indicator) const {
    return cells_[post * indicators_ + indicator];
  }
  const std::string& text_at(std::uint32_t post, std::uint32_t indicator) const;
  std::int64_t post_last_seen_ms(std::uint32_t post) const { return last_seen_[post]; }
  std::uint64_t version() const { return version_; }
  std::uint32_t post_count() const { return posts_; }
  std::uint32_t indicator_count() const { return indicators_; }

 private:
  std::uint32_t posts_, indicators_;
  std::vector<Reading> cells_;
  std::vector<std::string> texts_;  // only filled for text indicators
  std::vector<std::int64_t> last_seen_;
  std::uint64_t version_ = 0;
};

}  // namespace postwatch::aggregator
