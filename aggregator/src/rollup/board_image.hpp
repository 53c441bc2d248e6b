// The shown board (debounced goal and pillar statuses, alarms) as one document: the store
// keeps alarms in this form, and in a cluster the leader writes the whole board to a bucket
// every instance serves from (docs/scale-out.md), so all of them show the same statuses,
// since_ms and alarm ids.
#pragma once

#include "rollup/status_board.hpp"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace postwatch::aggregator {

nlohmann::json alarm_to_json(const Alarm& a);
// nullopt for a kind this version does not know (a newer one wrote it).
std::optional<Alarm> alarm_from_json(const nlohmann::json& j);

struct BoardImage {
  static constexpr int kFormat = 1;
  std::vector<ShownStatus> goals, pillars;  // catalogue order
  std::vector<Alarm> alarms;
};

// Every open alarm and the `cleared_kept` most recently raised cleared ones.
std::string encode_board_image(const StatusBoard& board, std::size_t cleared_kept = 256);
// "" on success, else what is wrong (the counts must match the catalogue's).
std::string decode_board_image(std::string_view text, const IndicatorCatalogue& catalogue, BoardImage& out);

}  // namespace postwatch::aggregator
