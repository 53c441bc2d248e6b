// Small HTTP helpers the API's resources share: JSON, CSV and error responses, query
// parsing and time formatting.
#pragma once

#include "feed/http_types.hpp"
#include "postwatch/csv_field.hpp"  // csv_field, for the CSV answers

#include <nlohmann/json_fwd.hpp>

#include <charconv>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace postwatch::aggregator {

using HttpQuery = std::map<std::string, std::string, std::less<>>;

// Beast (1.74) takes boost::string_view.
inline boost::beast::string_view bsv(std::string_view s) { return {s.data(), s.size()}; }

// A request's target split at '?': the path and the query string (empty without one).
struct TargetParts {
  std::string_view path, query;
};
TargetParts split_target(const HttpRequest& req);

HttpResponse json_response(http::status status, const nlohmann::json& body);
HttpResponse error_response(http::status status, const std::string& message);
HttpResponse csv_response(const std::string& filename, std::string body);
HttpResponse method_not_allowed(const HttpRequest& req, std::string_view target, std::string_view allow);
// A request body must be JSON (Content-Type: application/json): a browser cannot send that
// cross-origin without a preflight we never answer. Null when it is; else the 415 to send.
std::optional<HttpResponse> refuse_non_json(const HttpRequest& req);

template <typename Int>
bool parse_int(std::string_view text, Int& out) {
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && ptr == text.data() + text.size() && !text.empty();
}

inline bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }
double round2(double v);
std::string iso_utc(std::int64_t ms);  // 2026-12-03T17:00:00.000Z
// Percent-decodes a query string into key -> value (the last of repeated keys wins).
HttpQuery parse_query(std::string_view query);
// "json" (default) or "csv"; nullopt for anything else.
std::optional<bool> wants_csv(const HttpQuery& q);

}  // namespace postwatch::aggregator
