// /api/v1/silences: list, create and end silences and maintenance windows
// (docs/alerting.md, "Silences and maintenance windows"). Creating and ending need an
// operator token, as acknowledging does.
#include "feed/silence_routes.hpp"

#include "postwatch/clock.hpp"
#include "silences/silence_book.hpp"

#include <nlohmann/json.hpp>

#include <stdexcept>

namespace postwatch::aggregator {
using nlohmann::json;

HttpResponse SilenceRoutes::silences(const HttpQuery& q) const {
  if (!silences_) return error_response(http::status::service_unavailable, "silences need the store");
  auto state = q.count("state") ? q.at("state") : "all";
  if (state != "all" && state != "active" && state != "pending" && state != "expired")
    return error_response(http::status::bad_request, "state must be all, active, pending or expired");
  const auto now = now_utc_ms();
  json list = json::array();
  const auto& all = silences_->all();
  for (auto it = all.rbegin(); it != all.rend(); ++it)  // newest first
    if (state == "all" || state == it->state(now)) list.push_back(silence_json(*it, now));
  return json_response(http::status::ok, {{"silences", std::move(list)}});
}

HttpResponse SilenceRoutes::create_silence(const HttpRequest& req, const Principal* who) {
  if (!silences_) return error_response(http::status::service_unavailable, "silences need the store");
  if (auto refusal = refuse_non_json(req)) return *refusal;
  auto body = json::parse(req.body(), nullptr, false);
  if (body.is_discarded()) return error_response(http::status::bad_request, "the body is not JSON");
  const auto now = now_utc_ms();
  Silence s;
  try {
    s = silence_from_request(body, catalogue_, who ? who->name : std::string(), now);
  } catch (const std::invalid_argument& e) {
    return error_response(http::status::bad_request, e.what());
  }
  const Silence& added = silences_->add(std::move(s));
  if (silence_changed_) silence_changed_(added);
  return json_response(http::status::created, silence_json(added, now));
}

HttpResponse SilenceRoutes::end_silence(std::string_view id_text, const Principal* who) {
  if (!silences_) return error_response(http::status::service_unavailable, "silences need the store");
  std::uint64_t id = 0;
  if (!parse_int(id_text, id))
    return error_response(http::status::bad_request, "silence id must be a number, got '" + std::string(id_text) + "'");
  const auto now = now_utc_ms();
  auto ended = silences_->end(id, who ? who->name : std::string("anonymous"), now);
  if (!ended) return error_response(http::status::not_found, "no silence " + std::to_string(id));
  if (silence_changed_) silence_changed_(*ended);
  return json_response(http::status::ok, silence_json(*ended, now));
}

}  // namespace postwatch::aggregator
