// The demo's story (docs: /work/shared/domain/gbvs.md): which posts always take
// part, which carry a standing concern from the interim assessment of April 2020,
// and which kinds of episode flare up. Only ids the catalogue has are used.
#pragma once

#include "postwatch/catalogue.hpp"

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace postwatch::sim {

// Catalogue positions of `n` posts: the featured posts first (the ring of instability,
// Russia, China, Venezuela), then others drawn with `rng`. Requires n <= posts.
std::vector<std::uint32_t> choose_posts(const IndicatorCatalogue& catalogue, std::size_t n, std::mt19937_64& rng);

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
