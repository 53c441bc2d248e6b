// /api/v1/silences: list, create and end silences and maintenance windows
// (docs/alerting.md, "Silences and maintenance windows"). Creating and ending need an
// operator token, as acknowledging does.
#include "feed/api_routes.hpp"
#include "feed/http_helpers.hpp"
#include "postwatch/clock.hpp"
#include "silences/silence_book.hpp"

#include <nlohmann/json.hpp>

#include <stdexcept>

namespace postwatch::aggregator {
using nlohmann::json;

HttpResponse ApiRoutes::silences(const Query& q) {
  if (!src_.silences) return error_response(http::status::service_unavailable, "silences need the store");
  auto state = q.count("state") ? q.at("state") : "all";
  if (state != "all" && state != "active" && state != "pending" && state != "expired")
    return error_response(http::status::bad_request, "state must be all, active, pending or expired");
  const auto now = now_utc_ms();
  json list = json::array();
  const auto& all = src_.silences->all();
  for (auto it = all.rbegin(); it != all.rend(); ++it)  // newest first
    if (state == "all" || state == it->state(now)) list.push_back(silence_json(*it, now));
  return json_response(http::status::ok, {{"silences", std::move(list)}});
}

HttpResponse ApiRoutes::create_silence(const HttpRequest& req, const Principal* who) {
  if (!src_.silences) return error_response(http::status::service_unavailable, "silences need the store");
  if (auto refusal = refuse_non_json(req)) return *refusal;
  auto body = json::parse(req.body(), nullptr, false);
  if (body.is_discarded()) return error_response(http::status::bad_request, "the body is not JSON");
  const auto now = now_utc_ms();
  Silence s;
  try {
    s = silence_from_request(body, src_.catalogue, who ? who->name : std::string(), now);
  } catch (const std::invalid_argument& e) {
    return error_response(http::status::bad_request, e.what());
  }
  const Silence& added = src_.silences->add(std::move(s));
  if (src_.silence_changed) src_.silence_changed(added);
  return json_response(http::status::created, silence_json(added, now));
}

HttpResponse ApiRoutes::end_silence(std::string_view id_text, const Principal* who) {
  if (!src_.silences) return error_response(http::status::service_unavailable, "silences need the store");
  std::uint64_t id = 0;
  if (!parse_int(id_text, id))
    return error_response(http::status::bad_request, "silence id must be a number, got '" + std::string(id_text) + "'");
  const auto now = now_utc_ms();
  auto ended = src_.silences->end(id, who ? who->name : std::string("anonymous"), now);
  if (!ended) return error_response(http::status::not_found, "no silence " + std::to_string(id));
  if (src_.silence_changed) src_.silence_changed(*ended);
  return json_response(http::status::ok, silence_json(*ended, now));
}

}  // namespace postwatch::aggregator
