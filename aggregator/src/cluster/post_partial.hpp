// A post's whole aggregate state as the holder of its partition writes it to the posts
// bucket (docs/scale-out.md), for every other instance to merge into its global view and for
// the next holder to take the post over from. Snapshots merge by replacement: one instance
// holds a partition at a time, so the holder's latest snapshot is the post's state. JSON:
// a post is written at most every snapshot interval, and a person can read it.
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
  static constexpr int kFormat = 2;  // 2: on NATS (no version or released_for)
  std::string post;
  std::string owner, incarnation;  // the writing instance
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
