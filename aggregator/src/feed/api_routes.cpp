#include "feed/api_routes.hpp"

#include "feed/snapshot_json.hpp"
#include "postwatch/clock.hpp"
#include "postwatch/wire_codec.hpp"
#include "store/event_store.hpp"

#include <nlohmann/json.hpp>

#include <charconv>

namespace postwatch::aggregator {
using nlohmann::json;

namespace {

HttpResponse json_response(http::status status, const json& body) {
  HttpResponse res{status, 11};
  res.set(http::field::content_type, "application/json");
  res.set(http::field::cache_control, "no-store");
  res.body() = body.dump();
  return res;
}

HttpResponse error_response(http::status status, const std::string& message) {
  return json_response(status, json{{"error", {{"status", static_cast<int>(status)}, {"message", message}}}});
}

template <typename Int>
bool parse_int(std::string_view text, Int& out) {
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && ptr == text.data() + text.size() && !text.empty();
}

std::map<std::string, std::string, std::less<>> parse_query(std::string_view q) {
  std::map<std::string, std::string, std::less<>> out;
  while (!q.empty()) {
    auto amp = q.find('&');
    auto pair = q.substr(0, amp);
    auto eq = pair.find('=');
    out[std::string(pair.substr(0, eq))] = eq == std::string_view::npos ? "" : std::string(pair.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }
  return out;
}

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

}  // namespace

ApiRoutes::ApiRoutes(FeedSources sources) : src_(std::move(sources)) {}

HttpResponse ApiRoutes::handle(const HttpRequest& req) {
  std::string_view target(req.target().data(), req.target().size());
  std::string_view query;
  if (auto q = target.find('?'); q != std::string_view::npos) {
    query = target.substr(q + 1);
    target = target.substr(0, q);
  }
  const auto q = parse_query(query);
  const bool get = req.method() == http::verb::get || req.method() == http::verb::head;
  const bool is_post = req.method() == http::verb::post;

  constexpr std::string_view alarms_prefix = "/api/v1/alarms/";
  if (is_post && starts_with(target, alarms_prefix) && target.ends_with("/ack")) {
    auto id = target.substr(alarms_prefix.size(), target.size() - alarms_prefix.size() - 4);
    return acknowledge(id, req.body());
  }
  if (!get)
    return error_response(http::status::method_not_allowed,
                          std::string(req.method_string()) + " is not supported on " + std::string(target));

  if (target == "/healthz") return json_response(http::status::ok, {{"status", "ok"}});
  if (target == "/readyz") {
    bool ready = src_.ready && src_.ready();
    return json_response(ready ? http::status::ok : http::status::service_unavailable,
                         {{"status", ready ? "ready" : "not ready"}, {"mqtt_subscribed", ready}});
  }
  if (target == "/api/v1/goals" || target == "/api/v1/pillars") return goals();
  if (starts_with(target, "/api/v1/goals/")) return goal(target.substr(14));
  if (target == "/api/v1/posts") return posts();
  if (starts_with(target, "/api/v1/posts/")) return post(target.substr(14));
  if (target == "/api/v1/agents") return agents();
  if (target == "/api/v1/stats") return stats();
  if (target == "/api/v1/alarms") return alarms(q);
  if (target == "/api/v1/history") return history(q);
  return error_response(http::status::not_found,
                        "no such endpoint: " + std::string(target) +
                            " (try /api/v1/goals, /api/v1/goals/{id}, /api/v1/posts, /api/v1/posts/{id}, "
                            "/api/v1/agents, /api/v1/alarms, /api/v1/history, /api/v1/stats, /healthz)");
}

HttpResponse ApiRoutes::goals() {
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

HttpResponse ApiRoutes::goal(std::string_view id_text) {
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

HttpResponse ApiRoutes::posts() {
  const auto& cat = src_.catalogue;
  const auto& last = src_.board.last();
  const std::size_t n_ind = cat.indicators().size();
  json posts = json::array();
  for (std::uint32_t p = 0; p < cat.posts().size(); ++p) {
    const Post& post = cat.posts()[p];
    Status worst = Status::Unknown;
    std::uint32_t reporting = 0;
    for (std::uint32_t i = 0; i < n_ind; ++i) {
      auto cell = static_cast<std::size_t>(p) * n_ind + i;
      if (cell < last.cells.size() && last.cells[cell] != Status::Unknown) {
        worst = std::max(worst, last.cells[cell]);
        ++reporting;
      }
    }
    posts.push_back({{"id", post.id},
                     {"city", post.city},
                     {"country", post.country},
                     {"region", post.region},
                     {"status", to_string(worst)},
                     {"indicators_reporting", reporting},
                     {"last_seen_ms", src_.state.post_last_seen_ms(p)}});
  }
  return json_response(http::status::ok, {{"posts", std::move(posts)}});
}

HttpResponse ApiRoutes::post(std::string_view id) {
  const auto& cat = src_.catalogue;
  auto p = cat.post_index(id);
  if (!p) return error_response(http::status::not_found, "no post '" + std::string(id) + "'");
  const Post& post = cat.posts()[*p];
  const auto& last = src_.board.last();
  json inds = json::array();
  for (std::uint32_t i = 0; i < cat.indicators().size(); ++i) {
    const Reading& r = src_.state.at(*p, i);
    if (!r.present) continue;
    const Indicator& ind = cat.indicators()[i];
    json j{
        {"id", ind.id}, {"name", ind.name}, {"observed_at_ms", r.observed_at_ms}, {"received_at_ms", r.received_at_ms}};
    auto cell = static_cast<std::size_t>(*p) * cat.indicators().size() + i;
    if (ind.kind == ValueKind::Text) {
      j["text"] = src_.state.text_at(*p, i);
      j["status"] = "unknown";
    } else {
      j["value"] = src_.state.value(*p, i, now_utc_ms());
      j["last_reading"] = r.number;
      j["status"] = cell < last.cells.size() ? to_string(last.cells[cell]) : "unknown";
      if (ind.kind == ValueKind::Count) j["window_s"] = ind.window_s;
    }
    inds.push_back(std::move(j));
  }
  return json_response(http::status::ok, {{"id", post.id},
                                          {"city", post.city},
                                          {"country", post.country},
                                          {"region", post.region},
                                          {"last_seen_ms", src_.state.post_last_seen_ms(*p)},
                                          {"indicators", std::move(inds)}});
}

HttpResponse ApiRoutes::agents() {
  json list = json::array();
  const auto& tracks = src_.ingest.agents();
  for (const auto& [key, a] : src_.presence.agents()) {
    json j{{"id", key},
           {"post", a.post},
           {"agent", a.agent},
           {"online", a.online},
           {"births", a.births},
           {"agent_version", a.agent_version},
           {"config_hash", a.config_hash},
           {"heartbeat_interval_s", a.heartbeat_interval_s},
           {"last_heartbeat_ms", a.last_heartbeat_ms},
           {"first_unacked_seq_at_birth", a.first_unacked_seq}};
    if (a.has_metrics) {
      const auto& m = a.metrics;
      j["metrics"] = {{"spool_events", m.spool_events},
                      {"spool_bytes", m.spool_bytes},
                      {"oldest_unsent_age_ms", m.oldest_unsent_age_ms},
                      {"events_accepted", m.events_accepted},
                      {"events_sent", m.events_sent},
                      {"events_dropped", m.events_dropped},
                      {"reconnects", m.reconnects},
                      {"rss_bytes", m.rss_bytes},
                      {"uptime_s", m.uptime_s}};
    }
    if (auto it = tracks.find(key); it != tracks.end())
      j["events"] = {{"received", it->second.events},
                     {"highest_seq", it->second.seqs.highest()},
                     {"gaps", it->second.seqs.gaps()},
                     {"reordered", it->second.reordered},
                     {"clock_skew_ms", it->second.clock_skew_ms}};
    list.push_back(std::move(j));
  }
  return json_response(http::status::ok, {{"online", src_.presence.online_count()}, {"agents", std::move(list)}});
}

HttpResponse ApiRoutes::stats() {
  const auto& c = src_.ingest.counters();
  json undecodable = json::object();
  for (std::size_t i = 1; i < c.batches_undecodable.size(); ++i)
    undecodable[std::string(to_string(static_cast<DecodeError>(i)))] = c.batches_undecodable[i];
  json agents = json::array();
  for (const auto& [key, a] : src_.ingest.agents())
    agents.push_back({{"agent", key},
                      {"events", a.events},
                      {"highest_seq", a.seqs.highest()},
                      {"gaps", a.seqs.gaps()},
                      {"reordered", a.reordered},
                      {"clock_skew_ms", a.clock_skew_ms},
                      {"last_event_ms", a.last_event_ms}});
  json j{{"batches_accepted", c.batches_accepted},
         {"batches_rejected", c.batches_rejected()},
         {"batches_undecodable", undecodable},
         {"batches_bad_topic", c.batches_bad_topic},
         {"batches_topic_mismatch", c.batches_topic_mismatch},
         {"batches_unknown_post", c.batches_unknown_post},
         {"batches_clock_skew", c.batches_clock_skew},
         {"events_accepted", c.events_accepted},
         {"events_duplicate", c.events_duplicate},
         {"events_unknown_indicator", c.events_unknown_indicator},
         {"events_bad_value", c.events_bad_value},
         {"events_gaps", c.events_gaps},
         {"events_reordered", c.events_reordered},
         {"events_late", c.events_late},
         {"events_future", c.events_future},
         {"agent_states_rejected", src_.presence.rejected()},
         {"agents_online", src_.presence.online_count()},
         {"agents", std::move(agents)}};
  if (src_.store) {
    j["events_persisted"] = src_.store->events_committed();
    j["store_pending_events"] = src_.store->pending_events();
    j["store_write_errors"] = src_.store->write_errors();
  }
  return json_response(http::status::ok, j);
}

HttpResponse ApiRoutes::alarms(const Query& q) {
  auto state = q.count("state") ? q.at("state") : "all";
  if (state != "all" && state != "open" && state != "cleared")
    return error_response(http::status::bad_request, "state must be all, open or cleared");
  json list = json::array();
  const auto& all = src_.board.alarms();
  for (auto it = all.rbegin(); it != all.rend(); ++it) {  // newest first
    if (state == "open" && !it->open()) continue;
    if (state == "cleared" && it->open()) continue;
    list.push_back(alarm_json(*it));
  }
  return json_response(http::status::ok, {{"alarms", std::move(list)}});
}

HttpResponse ApiRoutes::acknowledge(std::string_view id_text, const std::string& body) {
  std::uint64_t id = 0;
  if (!parse_int(id_text, id))
    return error_response(http::status::bad_request, "alarm id must be a number, got '" + std::string(id_text) + "'");
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("by") || !j["by"].is_string() ||
      j["by"].get<std::string>().empty())
    return error_response(http::status::bad_request,
                          R"(body must be JSON {"by": "<operator>", "comment": "<optional text>"})");
  std::string comment = j.value("comment", "");
  if (comment.size() > 1024 || j["by"].get<std::string>().size() > 128)
    return error_response(http::status::bad_request, "by is limited to 128 bytes and comment to 1024");
  auto alarm = src_.board.acknowledge(id, j["by"].get<std::string>(), comment, now_utc_ms());
  if (!alarm) return error_response(http::status::not_found, "no alarm " + std::to_string(id));
  if (src_.alarm_changed) src_.alarm_changed(*alarm);
  return json_response(http::status::ok, alarm_json(*alarm));
}

HttpResponse ApiRoutes::history(const Query& q) {
  if (!src_.store) return error_response(http::status::service_unavailable, "history needs the store");
  auto scope = q.count("scope") ? q.at("scope") : "";
  auto id = q.count("id") ? q.at("id") : "";
  if (scope != "goal" && scope != "pillar")
    return error_response(http::status::bad_request, "scope must be goal or pillar");
  bool known = false;
  if (scope == "goal") {
    int g = 0;
    known = parse_int(std::string_view(id), g) && src_.catalogue.find_goal(g);
  } else {
    for (const auto& p : src_.catalogue.pillars()) known = known || p.id == id;
  }
  if (!known) return error_response(http::status::not_found, "no " + scope + " '" + id + "'");
  std::int64_t now = now_utc_ms(), from = now - 24 * 3600 * 1000, to = now;
  if (q.count("from") && !parse_int(std::string_view(q.at("from")), from))
    return error_response(http::status::bad_request, "from must be UTC milliseconds");
  if (q.count("to") && !parse_int(std::string_view(q.at("to")), to))
    return error_response(http::status::bad_request, "to must be UTC milliseconds");
  if (from > to) return error_response(http::status::bad_request, "from must not be after to");
  json points = json::array();
  for (const auto& h : src_.store->query_history(scope, id, from, to, 10000))
    points.push_back({{"at_ms", h.at_ms}, {"status", to_string(h.status)}, {"score", std::round(h.score * 100) / 100}});
  return json_response(http::status::ok,
                       {{"scope", scope}, {"id", id}, {"from_ms", from}, {"to_ms", to}, {"points", points}});
}

}  // namespace postwatch::aggregator
