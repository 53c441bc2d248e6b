// The demo's standing story (docs: /work/shared/domain/gbvs.md): which posts take
// part first, which carry a standing concern from the interim assessment of April
// 2020, and which kinds of episode flare up at random. Scenario files
// (scenario.hpp) add timed events on top. Only ids the catalogue has are used.
#pragma once

#include "postwatch/catalogue.hpp"

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace postwatch::sim {

// Catalogue positions of `n` posts taken from `pool` (every post when empty):
// `required` first, then the featured posts in the pool (the ring of instability,
// Russia, China, Venezuela), then others drawn with `rng`.
// Requires required.size() <= n <= pool size, and `required` within the pool.
std::vector<std::uint32_t> choose_posts(const IndicatorCatalogue& catalogue, const std::vector<std::uint32_t>& pool,
                                        const std::vector<std::uint32_t>& required, std::size_t n,
                                        std::mt19937_64& rng);

// Indicators that rest at amber at this post; empty for a calm post.
std::vector<std::uint32_t> standing_concerns(const IndicatorCatalogue& catalogue, std::string_view post_id);

struct EpisodeKind {
  std::string name;
  std::vector<std::uint32_t> indicators;  // related indicators; an episode drives 1-3 of them
  std::string note;                       // the situation note the post files when it starts
};
std::vector<EpisodeKind> episode_kinds(const IndicatorCatalogue& catalogue);

// A situation note from a quiet day at a post.
std::string calm_note(std::mt19937_64& rng);

}  // namespace postwatch::sim
