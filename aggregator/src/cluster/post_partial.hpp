// A post's whole aggregate state as one aggregator instance publishes it (retained, on
// postwatch/v1/cluster/<group>/partials/<post>) for every other instance to merge into its
// global view and for the next owner to take the post over from. Per-post partials merge
// by replacement: one instance owns a post at a time, so the owner's latest partial is the
// post's state. JSON, since a partial goes out at most every partial interval per post.
#pragma once

#include "ingest/batch_ingest.hpp"
#include "postwatch/catalogue.hpp"
#include "rollup/indicator_state.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace postwatch::aggregator {

struct PostPartial {
  static constexpr int kFormat = 1;
  std::string post;
  std::string owner, incarnation;  // the publishing instance
  std::uint64_t version = 0;       // rises with every publish of one incarnation
  std::string released_for;        // set when the owner hands the post over in this view
  std::int64_t published_at_ms = 0;
  PostRows rows;
  std::vector<AgentTrackSnapshot> agents;

  // The highest seq this partial covers for `agent` (0: none).
  std::uint64_t highest_seq(std::string_view agent) const;
};

std::string encode_partial(const PostPartial& p, const IndicatorCatalogue& catalogue);
// "" on success, else what is wrong. Indicators the catalogue does not know are skipped.
std::string decode_partial(std::string_view payload, const IndicatorCatalogue& catalogue, PostPartial& out);

}  // namespace postwatch::aggregator
