#include "feed/alarm_routes.hpp"

#include "feed/snapshot_json.hpp"
#include "postwatch/clock.hpp"

#include <nlohmann/json.hpp>

namespace postwatch::aggregator {
using nlohmann::json;

HttpResponse AlarmRoutes::alarms(const HttpQuery& q) const {
  auto state = q.count("state") ? q.at("state") : "all";
  if (state != "all" && state != "open" && state != "cleared")
    return error_response(http::status::bad_request, "state must be all, open or cleared");
  json list = json::array();
  const auto& all = board_.alarms();
  for (auto it = all.rbegin(); it != all.rend(); ++it) {  // newest first
    if (state == "open" && !it->open()) continue;
    if (state == "cleared" && it->open()) continue;
    list.push_back(alarm_json(*it));
    if (mark_alarm_) mark_alarm_(*it, list.back());
  }
  return json_response(http::status::ok, {{"alarms", std::move(list)}});
}

HttpResponse AlarmRoutes::acknowledge(const HttpRequest& req, std::string_view id_text, const Principal* who) {
  std::uint64_t id = 0;
  if (!parse_int(id_text, id))
    return error_response(http::status::bad_request, "alarm id must be a number, got '" + std::string(id_text) + "'");
  json j = json::object();
  if (!req.body().empty()) {
    if (auto refusal = refuse_non_json(req)) return *refusal;
    j = json::parse(req.body(), nullptr, false);
  }
  const char* usage =
      who ? R"(body must be empty or JSON {"by": "<operator, default: the token's name>", "comment": "<optional>"})"
          : R"(body must be JSON {"by": "<operator>", "comment": "<optional text>"})";
  if (j.is_discarded() || !j.is_object()) return error_response(http::status::bad_request, usage);
  if ((j.contains("by") && !j["by"].is_string()) || (j.contains("comment") && !j["comment"].is_string()))
    return error_response(http::status::bad_request, usage);
  std::string by = j.value("by", who ? who->name : std::string());
  if (by.empty()) return error_response(http::status::bad_request, usage);
  std::string comment = j.value("comment", "");
  if (comment.size() > 1024 || by.size() > 128)
    return error_response(http::status::bad_request, "by is limited to 128 bytes and comment to 1024");
  auto alarm = board_.acknowledge(id, by, comment, now_utc_ms());
  if (!alarm) return error_response(http::status::not_found, "no alarm " + std::to_string(id));
  if (alarm_changed_) alarm_changed_(*alarm);
  return json_response(http::status::ok, alarm_json(*alarm));
}

}  // namespace postwatch::aggregator
