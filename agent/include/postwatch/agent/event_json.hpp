// Parses one event written as JSON by a local source:
//   {"indicator": "terrorism_threat_level", "value": 4, "observed_at_ms": 1700000000000,
//    "note": "...", "tags": {"source": "dsc"}}
// "value" is a number, true/false, or a string for text indicators; the kind
// comes from the catalogue. observed_at_ms may be omitted (then: now).
#pragma once

#include "postwatch/catalogue.hpp"
#include "postwatch/event.hpp"

#include <string>
#include <string_view>

namespace postwatch::agent {

// Empty on success, otherwise what is wrong with the input.
std::string parse_event_json(std::string_view text, const IndicatorCatalogue& catalogue, IndicatorEvent& out);

}  // namespace postwatch::agent
