// What fleet_bundle.cpp (the signed envelope) and fleet_bundle_document.cpp (the document in
// it) share: the JSON type, parsing a stranger's JSON, and the document's checks. Private to
// common/src.
#pragma once

#include "postwatch/fleet_bundle.hpp"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <exception>
#include <optional>
#include <string>
#include <string_view>

namespace postwatch::bundle_json {

// The same JSON type as the rest of the agent: a second one (ordered_json) would add its own
// parser and serializer to a binary sized for boards. Members come out sorted; the signature
// covers the text as written, so nothing depends on their order.
using Json = nlohmann::json;

// `text` quoted for a one-line message: control characters as '?', at most `max` bytes.
std::string shown(std::string_view text, std::size_t max = 64);

// A JSON library's message without its "[json.exception...] " tag, on one line, bounded.
std::string json_error(const std::exception& e);

// Parses `text`, or says why not in `error` ("<what> is not JSON: ...").
std::optional<Json> parse_json(std::string_view text, std::string_view what, std::string& error);

// The first problem with `b` (naming the field), or empty: what sign_bundle refuses and what
// open_bundle refuses in a document after checking each field's type.
std::string bundle_problem(const FleetBundle& b);

// The document's fields into `b`; empty, or what is wrong (the field named).
std::string parse_document(const Json& j, FleetBundle& b);

}  // namespace postwatch::bundle_json
