// JSON views of the board shared by the HTTP API and the MQTT snapshots, so both
// feeds say the same thing in the same words.
#pragma once

#include "postwatch/catalogue.hpp"
#include "rollup/status_board.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

namespace postwatch::aggregator {

nlohmann::json indicator_json(const IndicatorCatalogue& cat, const IndicatorRollup& r);
// A goal's shown status with its raw roll-up; `detail` adds the indicators.
nlohmann::json goal_snapshot_json(const IndicatorCatalogue& cat, const StatusBoard& board, std::size_t goal_index,
                                  bool detail = false);
nlohmann::json pillar_snapshot_json(const IndicatorCatalogue& cat, const StatusBoard& board, std::size_t pillar_index);
nlohmann::json alarm_json(const Alarm& a);
// The live stream's first message: {"type":"snapshot", goals, pillars, open alarms (newest first)}.
nlohmann::json stream_snapshot_json(const IndicatorCatalogue& cat, const StatusBoard& board, std::int64_t now_ms);
// Serialises for the wire. Invalid UTF-8 (an agent's text is not checked for it) is
// replaced rather than thrown on, so one bad string cannot fail a response.
std::string dump_json(const nlohmann::json& j);

}  // namespace postwatch::aggregator
