// GET /api/v1/posts/{id}/events: what a post's agents sent, as stored — the history of its
// readings, with the agent's own time and the corrected one when its clock was off, and
// the reason when an event was stored but not applied (docs/aggregator.md, "Time").
#include "feed/post_routes.hpp"
#include "feed/snapshot_json.hpp"
#include "postwatch/clock.hpp"
#include "store/event_store.hpp"

#include <fmt/format.h>

namespace postwatch::aggregator {
using nlohmann::json;

HttpResponse PostRoutes::post_events(std::string_view id, const HttpQuery& q) const {
  if (!src_.store) return error_response(http::status::service_unavailable, "event history needs the store");
  auto csv = wants_csv(q);
  if (!csv) return error_response(http::status::bad_request, "format must be json or csv");
  const auto& cat = src_.catalogue;
  if (!cat.post_index(id)) return error_response(http::status::not_found, "no post '" + std::string(id) + "'");
  EventQuery eq;
  eq.post = std::string(id);
  const std::int64_t now = now_utc_ms();
  eq.from_ms = now - 24LL * 3600 * 1000;
  eq.to_ms = now + 24LL * 3600 * 1000;  // events refused as "future" are stored with their time
  if (q.count("from") && !parse_int(std::string_view(q.at("from")), eq.from_ms))
    return error_response(http::status::bad_request, "from must be UTC milliseconds");
  if (q.count("to") && !parse_int(std::string_view(q.at("to")), eq.to_ms))
    return error_response(http::status::bad_request, "to must be UTC milliseconds");
  if (eq.from_ms > eq.to_ms) return error_response(http::status::bad_request, "from must not be after to");
  if (q.count("indicator")) {
    eq.indicator = q.at("indicator");
    if (!cat.indicator_index(eq.indicator))
      return error_response(http::status::not_found, "no indicator '" + eq.indicator + "'");
  }
  if (q.count("limit") && (!parse_int(std::string_view(q.at("limit")), eq.limit) || eq.limit < 1 || eq.limit > 10000))
    return error_response(http::status::bad_request, "limit must be 1 to 10000");
  if (!src_.store->flush(std::chrono::seconds(2)))
    return error_response(http::status::service_unavailable, "the store is behind; try again");
  auto rows = src_.store->query_events(eq);
  if (*csv) {
    std::string out =
        "observed_at_ms,observed_at_utc,agent_observed_at_ms,time_corrected,clock_correction_ms,received_at_ms,agent,"
        "seq,indicator,value,text,late,refused\r\n";
    for (const auto& r : rows) {
      const std::int64_t raw = r.observed_at_ms + r.clock_correction_ms;
      out += fmt::format("{},{},{},{},{},{},{},{},{},{},{},{},{}\r\n", r.observed_at_ms, iso_utc(r.observed_at_ms), raw,
                         r.clock_correction_ms != 0, r.clock_correction_ms, r.received_at_ms, csv_field(r.agent), r.seq,
                         csv_field(r.indicator), r.kind == ValueKind::Text ? "" : fmt::format("{}", r.number),
                         csv_field(r.text), r.late, to_string(r.refused));
    }
    return csv_response("events-" + std::string(id) + ".csv", std::move(out));
  }
  json list = json::array();
  for (const auto& r : rows) {
    json e{{"observed_at_ms", r.observed_at_ms},
           {"agent_observed_at_ms", r.observed_at_ms + r.clock_correction_ms},
           {"time_corrected", r.clock_correction_ms != 0},
           {"clock_correction_ms", r.clock_correction_ms},
           {"received_at_ms", r.received_at_ms},
           {"agent", r.agent},
           {"seq", r.seq},
           {"indicator", r.indicator},
           {"late", r.late}};
    if (r.kind == ValueKind::Text)
      e["text"] = r.text;
    else
      e["value"] = r.number;
    if (r.refused != EventRefusal::None) e["refused"] = to_string(r.refused);
    list.push_back(std::move(e));
  }
  return json_response(http::status::ok, {{"post", id},
                                          {"from_ms", eq.from_ms},
                                          {"to_ms", eq.to_ms},
                                          {"count", list.size()},
                                          {"events", std::move(list)}});
}

}  // namespace postwatch::aggregator
