#include "feed/board_routes.hpp"

#include "feed/snapshot_json.hpp"
#include "postwatch/clock.hpp"
#include "store/event_store.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace postwatch::aggregator {
using nlohmann::json;

HttpResponse BoardRoutes::goals() const {
  const auto& cat = src_.catalogue;
  json pillars = json::array();
  for (std::size_t i = 0; i < cat.pillars().size(); ++i) pillars.push_back(pillar_snapshot_json(cat, src_.board, i));
  json goals = json::array();
  for (std::size_t g = 0; g < cat.goals().size(); ++g) goals.push_back(goal_snapshot_json(cat, src_.board, g));
  return json_response(http::status::ok, {{"generated_at_ms", now_utc_ms()},
                                          {"state_version", src_.state.version()},
                                          {"pillars", std::move(pillars)},
                                          {"goals", std::move(goals)}});
}

HttpResponse BoardRoutes::goal(std::string_view id_text) const {
  int id = 0;
  if (!parse_int(id_text, id))
    return error_response(http::status::bad_request, "goal id must be a number, got '" + std::string(id_text) + "'");
  const auto& goals = src_.catalogue.goals();
  for (std::size_t g = 0; g < goals.size(); ++g)
    if (goals[g].id == id)
      return json_response(http::status::ok, goal_snapshot_json(src_.catalogue, src_.board, g, true));
  return error_response(http::status::not_found,
                        "no goal " + std::to_string(id) + " (goals are 1-" + std::to_string(goals.size()) + ")");
}

HttpResponse BoardRoutes::threats() const {
  const auto& cat = src_.catalogue;
  json list = json::array();
  for (const Threat& t : cat.threats()) {
    Status worst = Status::Unknown;
    json goals = json::array();
    for (int id : t.goals) {
      for (std::size_t g = 0; g < cat.goals().size(); ++g) {
        if (cat.goals()[g].id != id) continue;
        const ShownStatus& s = src_.board.goals()[g];
        worst = std::max(worst, s.shown);
        goals.push_back({{"id", id},
                         {"name", cat.goals()[g].name},
                         {"pillar", cat.goals()[g].pillar},
                         {"status", to_string(s.shown)},
                         {"score", s.shown == Status::Unknown ? json(nullptr) : json(round2(s.score))}});
      }
    }
    list.push_back({{"id", t.id}, {"name", t.name}, {"status", to_string(worst)}, {"goals", std::move(goals)}});
  }
  return json_response(http::status::ok, {{"threats", std::move(list)}});
}

HttpResponse BoardRoutes::history(const HttpQuery& q) const {
  if (!src_.store) return error_response(http::status::service_unavailable, "history needs the store");
  auto csv = wants_csv(q);
  if (!csv) return error_response(http::status::bad_request, "format must be json or csv");
  const std::string scope = q.count("scope") ? q.at("scope") : "";
  auto id = q.count("id") ? q.at("id") : "";
  const auto which = parse_status_scope(scope);
  if (!which) return error_response(http::status::bad_request, "scope must be goal or pillar");
  bool known = false;
  if (*which == StatusScope::Goal) {
    int g = 0;
    known = parse_int(std::string_view(id), g) && src_.catalogue.find_goal(g);
  } else {
    for (const auto& p : src_.catalogue.pillars()) known = known || p.id == id;
  }
  if (!known) return error_response(http::status::not_found, "no " + scope + " '" + id + "'");
  std::int64_t now = now_utc_ms(), from = now - 24LL * 3600 * 1000, to = now;
  if (q.count("from") && !parse_int(std::string_view(q.at("from")), from))
    return error_response(http::status::bad_request, "from must be UTC milliseconds");
  if (q.count("to") && !parse_int(std::string_view(q.at("to")), to))
    return error_response(http::status::bad_request, "to must be UTC milliseconds");
  if (from < 0 || to < 0) return error_response(http::status::bad_request, "from and to must not be negative");
  if (from > to) return error_response(http::status::bad_request, "from must not be after to");
  auto points = src_.store->query_history(*which, id, from, to, 10000);
  if (*csv) {
    std::string out = "at_ms,at_utc,scope,id,status,score\r\n";
    for (const auto& h : points)  // an unknown point has no score: an empty field, as JSON's null
      out += fmt::format("{},{},{},{},{},{}\r\n", h.at_ms, iso_utc(h.at_ms), scope, csv_field(id), to_string(h.status),
                         h.status == Status::Unknown ? std::string() : fmt::format("{}", round2(h.score)));
    return csv_response("history-" + scope + "-" + id + ".csv", std::move(out));
  }
  json list = json::array();
  for (const auto& h : points)
    list.push_back({{"at_ms", h.at_ms},
                    {"status", to_string(h.status)},
                    {"score", h.status == Status::Unknown ? json(nullptr) : json(round2(h.score))}});
  return json_response(http::status::ok,
                       {{"scope", scope}, {"id", id}, {"from_ms", from}, {"to_ms", to}, {"points", std::move(list)}});
}

}  // namespace postwatch::aggregator
