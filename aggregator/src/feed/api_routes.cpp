#include "feed/api_routes.hpp"

#include "feed/assets.hpp"
#include "feed/figures.hpp"
#include "feed/http_helpers.hpp"
#include "feed/live_stream.hpp"
#include "feed/snapshot_json.hpp"
#include "postwatch/clock.hpp"
#include "postwatch/fleet_report_json.hpp"
#include "postwatch/wire_codec.hpp"
#include "store/event_store.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <charconv>
#include <cmath>
#include <ctime>
#include <map>

namespace postwatch::aggregator {
using nlohmann::json;

namespace {

constexpr std::string_view kApiPrefix = "/api/v1/";

HttpResponse asset_response(const HttpRequest& req, const EmbeddedAsset& a) {
  HttpResponse res{http::status::ok, 11};
  res.set(http::field::content_type, bsv(a.content_type));
  res.set(http::field::etag, bsv(a.etag));
  res.set(http::field::cache_control, "no-cache");  // revalidate: a new build serves new files at once
  res.set("X-Content-Type-Options", "nosniff");
  res.set("Referrer-Policy", "no-referrer");  // the dashboard's address may carry ?token=
  if (a.content_type.starts_with("text/html"))
    res.set("Content-Security-Policy",
            "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'; "
            "script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'");
  auto inm = req.find(http::field::if_none_match);
  if (inm != req.end() && std::string_view(inm->value().data(), inm->value().size()) == a.etag) {
    res.result(http::status::not_modified);
    return res;
  }
  res.body() = std::string(a.body);
  return res;
}

}  // namespace

ApiRoutes::Query parse_query(std::string_view q) {
  auto decode = [](std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '+') {
        out += ' ';
      } else if (s[i] == '%' && i + 2 < s.size()) {
        unsigned v = 0;
        auto [p, ec] = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
        if (ec == std::errc() && p == s.data() + i + 3) {
          out += static_cast<char>(v);
          i += 2;
        } else {
          out += '%';
        }
      } else {
        out += s[i];
      }
    }
    return out;
  };
  ApiRoutes::Query out;
  while (!q.empty()) {
    auto amp = q.find('&');
    auto pair = q.substr(0, amp);
    if (!pair.empty()) {
      auto eq = pair.find('=');
      out[decode(pair.substr(0, eq))] = eq == std::string_view::npos ? "" : decode(pair.substr(eq + 1));
    }
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }
  return out;
}

ApiRoutes::ApiRoutes(FeedSources sources) : src_(std::move(sources)) {
  // In the order /metrics lists them.
  FigureRegistry& r = figures_;
  add_ingest_figures(r, src_.ingest, src_.presence, src_.agents);
  if (src_.latency)
    r.histogram("postwatch_ingest_latency_seconds",
                "Time from an event's observed_at to its being applied to the state (agent clock to ours).",
                *src_.latency);
  if (src_.store) add_store_figures(r, *src_.store);
  add_presence_figures(
      r, src_.presence,
      [&cat = src_.catalogue, silent = src_.silent] {
        std::uint64_t n = 0;
        for (std::uint32_t p = 0; p < cat.posts().size(); ++p) n += silent && p < silent->size() && (*silent)[p];
        return n;
      },
      src_.ready);
  add_stream_figures(r, src_.stream);
  add_status_figures(r, src_.catalogue, src_.board);
  if (src_.flow) add_flow_figures(r, src_.flow);
  if (src_.confirm) add_confirm_figures(r, *src_.confirm);
  if (src_.outbound) add_outbound_figures(r, *src_.outbound);
  if (src_.notifications) add_notification_figures(r, src_.notifications);
  add_trust_figures(r, src_.ingest, src_.presence, src_.trust);
  add_fleet_figures(r, src_.agents, src_.commands, src_.rollouts);
  add_alarm_figures(r, src_.board);
}

std::optional<HttpResponse> ApiRoutes::authorize(const HttpRequest& req, const Query& q, bool allow_query_token,
                                                 bool need_operator, const Principal*& who) const {
  who = nullptr;
  if (!src_.access || src_.access->open()) return std::nullopt;
  std::optional<std::string_view> token = bearer_token(req);
  if (!token && allow_query_token) {
    if (auto it = q.find("token"); it != q.end() && !it->second.empty()) token = it->second;
  }
  if (!token) {
    auto res = error_response(http::status::unauthorized,
                              allow_query_token ? "a token is needed: Authorization: Bearer <token> or ?token=<token>"
                                                : "a token is needed: Authorization: Bearer <token>");
    res.set(http::field::www_authenticate, R"(Bearer realm="postwatch")");
    return res;
  }
  who = src_.access->find(*token);
  if (!who) {
    auto res = error_response(http::status::unauthorized, "unknown token");
    res.set(http::field::www_authenticate, R"(Bearer realm="postwatch", error="invalid_token")");
    return res;
  }
  if (need_operator && who->role != Role::Operator)
    return error_response(http::status::forbidden,
                          "token '" + who->name + "' has role read; this needs an operator token");
  return std::nullopt;
}

std::optional<HttpResponse> ApiRoutes::check_upgrade(const HttpRequest& req) {
  auto [target, query] = split_target(req);
  if (target != "/api/v1/stream")
    return error_response(http::status::not_found,
                          "no WebSocket endpoint at " + std::string(target) + " (the live stream is /api/v1/stream)");
  // A browser says where the page came from: only the dashboard's own origin may connect,
  // so another site open in the same browser cannot read the stream.
  if (auto origin = req.find(http::field::origin); origin != req.end()) {
    std::string_view o(origin->value().data(), origin->value().size());
    if (auto s = o.find("://"); s != std::string_view::npos) o.remove_prefix(s + 3);
    auto host = req.find(http::field::host);
    if (host == req.end() || o != std::string_view(host->value().data(), host->value().size()))
      return error_response(http::status::forbidden, "WebSocket from another origin refused");
  }
  const Principal* who = nullptr;
  if (auto refusal = authorize(req, parse_query(query), true, false, who)) return refusal;
  if (src_.stream && src_.stream->full())
    return error_response(http::status::service_unavailable, "too many stream clients; try again later");
  return std::nullopt;
}

HttpResponse ApiRoutes::handle(const HttpRequest& req) {
  auto [target, query] = split_target(req);
  const auto q = parse_query(query);
  const bool get = req.method() == http::verb::get || req.method() == http::verb::head;

  if (starts_with(target, kApiPrefix)) return route_api(req, target, q);

  // Open: health checks, metrics and the dashboard's files (they hold no data).
  if (target == "/healthz" || target == "/readyz" || target == "/metrics") {
    if (!get) return method_not_allowed(req, target, "GET, HEAD");
    if (target == "/metrics") return metrics();
    if (target == "/healthz") return json_response(http::status::ok, {{"status", "ok"}});
    bool ready = src_.ready && src_.ready();
    return json_response(ready ? http::status::ok : http::status::service_unavailable,
                         {{"status", ready ? "ready" : "not ready"}, {"mqtt_subscribed", ready}});
  }
  std::string_view asset_path = target;
  if (target == "/dashboard" || target == "/dashboard/" || target == "/index.html") asset_path = "/";
  if (const EmbeddedAsset* a = find_embedded_asset(asset_path); a && !starts_with(a->path, kApiPrefix)) {
    if (!get) return method_not_allowed(req, target, "GET, HEAD");
    return asset_response(req, *a);
  }
  return error_response(http::status::not_found,
                        "no such endpoint: " + std::string(target) +
                            " (the dashboard is at /, the API under /api/v1/, its description at "
                            "/api/v1/openapi.json)");
}

HttpResponse ApiRoutes::route_api(const HttpRequest& req, std::string_view target, const Query& q) {
  const bool get = req.method() == http::verb::get || req.method() == http::verb::head;
  const bool is_post = req.method() == http::verb::post;
  constexpr std::string_view alarms_prefix = "/api/v1/alarms/";
  const bool ack_path = starts_with(target, alarms_prefix) && target.ends_with("/ack");
  constexpr std::string_view silences_prefix = "/api/v1/silences/";
  const bool silences_path = target == "/api/v1/silences", silence_path = starts_with(target, silences_prefix);
  const bool is_delete = req.method() == http::verb::delete_;
  const bool tokens_path = target == "/api/v1/enrolment-tokens";
  constexpr std::string_view keys_prefix = "/api/v1/agent-keys/";
  const bool revoke_path = starts_with(target, keys_prefix) && target.ends_with("/revoke");
  const bool next_key_path = target == "/api/v1/aggregator-key/next",
             switch_key_path = target == "/api/v1/aggregator-key/switch";
  constexpr std::string_view rollouts_prefix = "/api/v1/rollouts/";
  const bool rollouts_path = target == "/api/v1/rollouts", rollout_path = starts_with(target, rollouts_prefix);
  constexpr std::string_view commands_prefix = "/api/v1/commands/";
  const bool commands_path = target == "/api/v1/commands", command_path = starts_with(target, commands_prefix);
  const bool changes = (ack_path && is_post) || (silences_path && is_post) || (silence_path && is_delete) ||
                       (tokens_path && is_post) || (revoke_path && is_post) ||
                       ((next_key_path || switch_key_path) && is_post) ||
                       ((rollouts_path || rollout_path) && is_post) || (commands_path && is_post);

  const Principal* who = nullptr;
  if (auto refusal = authorize(req, q, false, changes, who)) return *refusal;

  if (ack_path) {
    if (!is_post) return method_not_allowed(req, target, "POST");
    return acknowledge(req, target.substr(alarms_prefix.size(), target.size() - alarms_prefix.size() - 4), who);
  }
  if (silences_path && is_post) return create_silence(req, who);
  if (silence_path) {
    if (!is_delete) return method_not_allowed(req, target, "DELETE");
    return end_silence(target.substr(silences_prefix.size()), who);
  }
  if (silences_path && !get) return method_not_allowed(req, target, "GET, HEAD, POST");
  if (tokens_path) {
    if (!is_post) return method_not_allowed(req, target, "POST");
    return issue_token(req, who);  // feed/trust_routes.cpp
  }
  if (revoke_path) {
    if (!is_post) return method_not_allowed(req, target, "POST");
    return revoke_key(target.substr(keys_prefix.size(), target.size() - keys_prefix.size() - 7), who);
  }
  if (next_key_path || switch_key_path) {  // feed/aggregator_key_routes.cpp
    if (!is_post) return method_not_allowed(req, target, "POST");
    return next_key_path ? prepare_aggregator_key(who) : switch_aggregator_key(q, who);
  }
  if (rollouts_path || rollout_path) {  // feed/rollout_routes.cpp
    if (rollouts_path) {
      if (is_post) return create_rollout(req, who);
      if (!get) return method_not_allowed(req, target, "GET, HEAD, POST");
      return rollouts();
    }
    auto rest = target.substr(rollouts_prefix.size());
    const auto slash = rest.find('/');
    if (slash == std::string_view::npos) {
      if (!get) return method_not_allowed(req, target, "GET, HEAD");
      return rollout(rest);
    }
    if (!is_post) return method_not_allowed(req, target, "POST");
    return change_rollout(rest.substr(0, slash), rest.substr(slash + 1), who);
  }
  if (commands_path) {  // feed/command_routes.cpp
    if (is_post) return send_command(req, who);
    if (!get) return method_not_allowed(req, target, "GET, HEAD, POST");
    return commands();
  }
  if (command_path) {
    if (!get) return method_not_allowed(req, target, "GET, HEAD");
    return command(target.substr(commands_prefix.size()));
  }
  if (!get) return method_not_allowed(req, target, "GET, HEAD");

  if (target == "/api/v1/goals" || target == "/api/v1/pillars") return goals();
  if (starts_with(target, "/api/v1/goals/") && target.ends_with("/progress"))
    return goal_progress(target.substr(14, target.size() - 14 - 9), q);
  if (starts_with(target, "/api/v1/goals/")) return goal(target.substr(14));
  if (target == "/api/v1/targets") return targets(q);
  if (target == "/api/v1/threats") return threats();
  if (target == "/api/v1/regions") return regions(q);
  if (target == "/api/v1/posts") return posts(q);
  if (starts_with(target, "/api/v1/posts/") && target.ends_with("/events"))
    return post_events(target.substr(14, target.size() - 14 - 7), q);
  if (starts_with(target, "/api/v1/posts/")) return post(target.substr(14));
  if (target == "/api/v1/agents") return agents();
  if (starts_with(target, "/api/v1/agents/")) return agent(target.substr(15));
  if (target == "/api/v1/stats") return stats();
  if (target == "/api/v1/agent-keys") return agent_keys();
  if (target == "/api/v1/aggregator-key") return aggregator_key();
  if (target == "/api/v1/cluster")
    return json_response(http::status::ok, src_.cluster ? src_.cluster() : json{{"clustered", false}});
  if (target == "/api/v1/alarms") return alarms(q);
  if (target == "/api/v1/history") return history(q);
  if (silences_path) return silences(q);
  if (target == "/api/v1/whoami") return whoami(who);
  if (target == "/api/v1/stream")
    return error_response(http::status::upgrade_required,
                          "/api/v1/stream is a WebSocket: connect with ws:// (Upgrade: websocket)");
  if (const EmbeddedAsset* a = find_embedded_asset(target)) return asset_response(req, *a);  // openapi.json
  return error_response(
      http::status::not_found,
      "no such endpoint: " + std::string(target) +
          " (try /api/v1/goals, /api/v1/goals/{id}, /api/v1/goals/{id}/progress, /api/v1/targets, /api/v1/report, "
          "/api/v1/threats, /api/v1/regions, "
          "/api/v1/posts, /api/v1/posts/{id}, /api/v1/posts/{id}/events, /api/v1/agents, "
          "/api/v1/agents/{post}/{agent}, "
          "/api/v1/alarms, /api/v1/silences, /api/v1/history, /api/v1/agent-keys, /api/v1/enrolment-tokens, "
          "/api/v1/aggregator-key, /api/v1/rollouts, /api/v1/commands, /api/v1/stats, /api/v1/cluster, /api/v1/whoami, "
          "/api/v1/openapi.json)");
}

HttpResponse ApiRoutes::whoami(const Principal* who) const {
  if (!who) return json_response(http::status::ok, {{"auth", "none"}, {"name", nullptr}, {"role", "operator"}});
  return json_response(http::status::ok, {{"auth", "token"}, {"name", who->name}, {"role", to_string(who->role)}});
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

HttpResponse ApiRoutes::threats() {
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

std::vector<bool> ApiRoutes::goal_mask(int goal) const {
  const auto& inds = src_.catalogue.indicators();
  std::vector<bool> mask(inds.size(), false);
  for (std::size_t i = 0; i < inds.size(); ++i)
    for (const auto& gw : inds[i].goals)
      if (gw.goal == goal && inds[i].kind != ValueKind::Text) mask[i] = true;
  return mask;
}

void ApiRoutes::add_maintenance(json& post_json, std::uint32_t post) const {
  if (src_.maintenance && post < src_.maintenance->size() && (*src_.maintenance)[post] != 0)
    post_json["maintenance"] = (*src_.maintenance)[post];
}

bool ApiRoutes::is_silent(std::uint32_t post) const {
  return src_.silent && post < src_.silent->size() && (*src_.silent)[post];
}

namespace {

struct PostRow {
  Status worst = Status::Unknown;
  std::uint32_t reporting = 0;  // indicators with a current status
  std::uint32_t red = 0, amber = 0;
};

PostRow post_row(const RollupSnapshot& last, std::uint32_t post, std::size_t n_ind, const std::vector<bool>* mask) {
  PostRow row;
  for (std::uint32_t i = 0; i < n_ind; ++i) {
    if (mask && !(*mask)[i]) continue;
    auto cell = static_cast<std::size_t>(post) * n_ind + i;
    if (cell >= last.cells.size() || last.cells[cell] == Status::Unknown) continue;
    Status st = last.cells[cell];
    row.worst = std::max(row.worst, st);
    row.reporting += 1;
    row.red += st == Status::Red;
    row.amber += st == Status::Amber;
  }
  return row;
}

// The ?goal= filter: empty when absent; a response when it is bad.
std::optional<HttpResponse> parse_goal_filter(const IndicatorCatalogue& cat, const ApiRoutes::Query& q, int& goal) {
  goal = 0;
  auto it = q.find("goal");
  if (it == q.end()) return std::nullopt;
  if (!parse_int(std::string_view(it->second), goal))
    return error_response(http::status::bad_request, "goal must be a number, got '" + it->second + "'");
  if (!cat.find_goal(goal)) return error_response(http::status::not_found, "no goal " + it->second);
  return std::nullopt;
}

}  // namespace

HttpResponse ApiRoutes::regions(const Query& q) {
  const auto& cat = src_.catalogue;
  int goal = 0;
  if (auto bad = parse_goal_filter(cat, q, goal)) return *bad;
  std::vector<bool> mask;
  if (goal) mask = goal_mask(goal);
  struct Acc {
    Status worst = Status::Unknown;
    std::uint32_t posts = 0, reporting = 0, silent = 0, red = 0, amber = 0;
  };
  std::vector<Acc> acc(cat.regions().size());
  const std::size_t n_ind = cat.indicators().size();
  for (std::uint32_t p = 0; p < cat.posts().size(); ++p) {
    auto r = cat.region_index(cat.posts()[p].region);
    if (!r || cat.posts()[p].is_ministry()) continue;
    Acc& a = acc[*r];
    PostRow row = post_row(src_.board.last(), p, n_ind, goal ? &mask : nullptr);
    a.posts += 1;
    a.reporting += row.reporting > 0;
    a.silent += is_silent(p);
    a.red += row.worst == Status::Red;
    a.amber += row.worst == Status::Amber;
    a.worst = std::max(a.worst, row.worst);
  }
  json list = json::array();
  for (std::size_t r = 0; r < acc.size(); ++r)
    list.push_back({{"id", cat.regions()[r].id},
                    {"name", cat.regions()[r].name},
                    {"status", to_string(acc[r].worst)},
                    {"posts", acc[r].posts},
                    {"posts_reporting", acc[r].reporting},
                    {"posts_silent", acc[r].silent},
                    {"posts_red", acc[r].red},
                    {"posts_amber", acc[r].amber}});
  json body{{"regions", std::move(list)}};
  body["goal"] = goal ? json(goal) : json(nullptr);
  return json_response(http::status::ok, body);
}

std::uint64_t ApiRoutes::events_lost(std::uint32_t post) const {
  std::uint64_t lost = 0;
  for (auto aid : src_.agents.at_post(post)) {
    const AgentRecord& a = src_.agents[aid];
    if (a.has_events) lost += a.events.seqs.gaps();
  }
  return lost;
}

HttpResponse ApiRoutes::posts(const Query& q) {
  const auto& cat = src_.catalogue;
  auto csv = wants_csv(q);
  if (!csv) return error_response(http::status::bad_request, "format must be json or csv");
  int goal = 0;
  if (auto bad = parse_goal_filter(cat, q, goal)) return *bad;
  std::string region;
  if (auto it = q.find("region"); it != q.end()) {
    region = it->second;
    if (!cat.region_index(region)) return error_response(http::status::not_found, "no region '" + region + "'");
  }
  std::vector<bool> mask;
  if (goal) mask = goal_mask(goal);
  const std::size_t n_ind = cat.indicators().size();
  json list = json::array();
  std::string out =
      "id,city,country,region,status,silent,indicators_reporting,last_seen_ms,last_seen_utc,events_lost\r\n";
  for (std::uint32_t p = 0; p < cat.posts().size(); ++p) {
    const Post& post = cat.posts()[p];
    if (post.is_ministry() || (!region.empty() && post.region != region)) continue;
    PostRow row = post_row(src_.board.last(), p, n_ind, goal ? &mask : nullptr);
    const std::int64_t seen = src_.state.post_last_seen_ms(p);
    if (*csv) {
      out +=
          fmt::format("{},{},{},{},{},{},{},{},{},{}\r\n", csv_field(post.id), csv_field(post.city),
                      csv_field(post.country), csv_field(post.region), to_string(row.worst),
                      is_silent(p) ? "true" : "false", row.reporting, seen, seen ? iso_utc(seen) : "", events_lost(p));
      continue;
    }
    list.push_back({{"id", post.id},
                    {"city", post.city},
                    {"country", post.country},
                    {"region", post.region},
                    {"status", to_string(row.worst)},
                    {"silent", is_silent(p)},
                    {"indicators_reporting", row.reporting},
                    {"indicators_red", row.red},
                    {"indicators_amber", row.amber},
                    {"last_seen_ms", seen},
                    {"events_lost", events_lost(p)}});
    add_maintenance(list.back(), p);
  }
  if (*csv) return csv_response("posts.csv", std::move(out));
  return json_response(http::status::ok, {{"posts", std::move(list)}});
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
    json goals = json::array();
    for (const auto& gw : ind.goals) goals.push_back(gw.goal);
    json j{{"id", ind.id},
           {"name", ind.name},
           {"kind", to_string(ind.kind)},
           {"unit", ind.unit},
           {"goals", std::move(goals)},
           {"observed_at_ms", r.observed_at_ms},
           {"received_at_ms", r.received_at_ms},
           {"time_corrected", r.clock_correction_ms != 0}};
    if (r.clock_correction_ms != 0) {
      j["agent_observed_at_ms"] = r.observed_at_ms + r.clock_correction_ms;
      j["clock_correction_ms"] = r.clock_correction_ms;
    }
    auto cell = static_cast<std::size_t>(*p) * cat.indicators().size() + i;
    if (ind.kind == ValueKind::Text) {
      j["text"] = src_.state.text_at(*p, i);
      j["status"] = "unknown";
    } else if (ind.reported_by == Reporter::Ministry) {
      j["value"] = r.number;  // a national figure: no board status, strategy progress reads it
      j["reported_by"] = "ministry";
    } else {
      j["value"] = src_.state.value(*p, i, now_utc_ms());
      j["last_reading"] = r.number;
      j["status"] = cell < last.cells.size() ? to_string(last.cells[cell]) : "unknown";
      j["amber"] = ind.amber;
      j["red"] = ind.red;
      if (ind.kind == ValueKind::Count) j["window_s"] = ind.window_s;
    }
    inds.push_back(std::move(j));
  }
  PostRow row = post_row(last, *p, cat.indicators().size(), nullptr);
  json agents = json::array();
  for (auto aid : src_.agents.at_post(*p)) {
    const AgentRecord& a = src_.agents[aid];
    agents.push_back({{"agent", a.name},
                      {"online", a.has_presence && a.presence.online},
                      {"events_lost", a.has_events ? a.events.seqs.gaps() : 0},
                      {"clock", agent_clock_json(a)}});
  }
  json out{{"id", post.id},
           {"kind", post.is_ministry() ? "ministry" : "post"},
           {"city", post.city},
           {"country", post.country},
           {"region", post.region},
           {"status", to_string(row.worst)},
           {"silent", is_silent(*p)},
           {"last_seen_ms", src_.state.post_last_seen_ms(*p)},
           {"events_lost", events_lost(*p)},
           {"agents", std::move(agents)},
           {"indicators", std::move(inds)}};
  add_maintenance(out, *p);
  return json_response(http::status::ok, out);
}

namespace {

// One agent as /api/v1/agents shows it: what it announced (birth, heartbeat) and what
// ingest counted of its events; either part may be missing.
json agent_json(const std::string& key, const std::string& post, const AgentRecord& r) {
  json j{{"id", key}};
  const AgentPresenceRecord* a = r.has_presence ? &r.presence : nullptr;
  const AgentTrack* track = r.has_events ? &r.events : nullptr;
  if (a) {
    j.update({{"post", post},
              {"agent", r.name},
              {"online", a->online},
              {"births", a->births},
              {"agent_version", a->agent_version},
              {"config_hash", a->config_hash},
              {"heartbeat_interval_s", a->heartbeat_interval_s},
              {"one_shot", a->one_shot},
              {"last_heartbeat_ms", a->last_heartbeat_ms},
              {"first_unacked_seq_at_birth", a->first_unacked_seq},
              {"awaits_confirmation", a->awaits_confirmation}});
    if (a->has_metrics) {
      const auto& m = a->metrics;
      j["metrics"] = {{"spool_events", m.spool_events},
                      {"spool_bytes", m.spool_bytes},
                      {"oldest_unsent_age_ms", m.oldest_unsent_age_ms},
                      {"events_accepted", m.events_accepted},
                      {"events_sent", m.events_sent},
                      {"events_dropped", m.events_dropped},
                      {"reconnects", m.reconnects},
                      {"rss_bytes", m.rss_bytes},
                      {"uptime_s", m.uptime_s},
                      {"uplink_bytes", m.uplink_bytes},
                      {"uplink_bytes_per_s", m.uplink_bytes_per_s},
                      {"uplink_cap_bytes_per_s", m.uplink_cap_bytes_per_s}};
    }
    if (a->has_fleet) j["fleet"] = fleet_report_json(a->fleet);
  } else {
    // Events, but never a birth (yet): say so rather than guess.
    j.update({{"post", post}, {"agent", r.name}, {"online", false}, {"births", 0}});
  }
  j["clock"] = agent_clock_json(r);
  if (track)
    j["events"] = {{"received", track->events},
                   {"highest_seq", track->seqs.highest()},
                   {"gaps", track->seqs.gaps()},
                   {"settled_through", track->seqs.settled_through()},
                   {"anchored", track->seqs.anchored()},
                   {"reordered", track->reordered},
                   {"clock_skew_ms", track->clock_skew_ms},
                   {"last_event_ms", track->last_event_ms},
                   {"catalogue_version", track->catalogue_version}};
  return j;
}

}  // namespace

HttpResponse ApiRoutes::agents() {
  // Sorted by "post/agent", for stable output.
  std::vector<std::pair<std::string, const AgentRecord*>> sorted;
  sorted.reserve(src_.agents.size());
  for (const auto& r : src_.agents) sorted.emplace_back(src_.agents.key(r), &r);
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  json list = json::array();
  for (const auto& [key, r] : sorted) {
    list.push_back(agent_json(key, src_.catalogue.posts()[r->post].id, *r));
    add_agent_key(list.back(), src_.catalogue.posts()[r->post].id, r->name);
  }
  return json_response(http::status::ok, {{"online", src_.presence.online_count()}, {"agents", std::move(list)}});
}

HttpResponse ApiRoutes::agent(std::string_view key) {
  const AgentRecord* r = src_.agents.find(key);
  if (!r)
    return error_response(http::status::not_found, "unknown agent: " + std::string(key) +
                                                       " (ids are <post>/<agent>; GET /api/v1/agents lists them)");
  auto j = agent_json(std::string(key), src_.catalogue.posts()[r->post].id, *r);
  add_agent_key(j, src_.catalogue.posts()[r->post].id, r->name);
  return json_response(http::status::ok, j);
}

HttpResponse ApiRoutes::stats() { return json_response(http::status::ok, figures_.stats()); }

HttpResponse ApiRoutes::metrics() {
  MetricsText m;
  figures_.write_metrics(m);
  HttpResponse res{http::status::ok, 11};
  res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
  res.set(http::field::cache_control, "no-store");
  res.body() = m.text();
  return res;
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
    if (src_.mark_alarm) src_.mark_alarm(*it, list.back());
  }
  return json_response(http::status::ok, {{"alarms", std::move(list)}});
}

HttpResponse ApiRoutes::acknowledge(const HttpRequest& req, std::string_view id_text, const Principal* who) {
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
  auto alarm = src_.board.acknowledge(id, by, comment, now_utc_ms());
  if (!alarm) return error_response(http::status::not_found, "no alarm " + std::to_string(id));
  if (src_.alarm_changed) src_.alarm_changed(*alarm);
  return json_response(http::status::ok, alarm_json(*alarm));
}

HttpResponse ApiRoutes::history(const Query& q) {
  if (!src_.store) return error_response(http::status::service_unavailable, "history needs the store");
  auto csv = wants_csv(q);
  if (!csv) return error_response(http::status::bad_request, "format must be json or csv");
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
  std::int64_t now = now_utc_ms(), from = now - 24LL * 3600 * 1000, to = now;
  if (q.count("from") && !parse_int(std::string_view(q.at("from")), from))
    return error_response(http::status::bad_request, "from must be UTC milliseconds");
  if (q.count("to") && !parse_int(std::string_view(q.at("to")), to))
    return error_response(http::status::bad_request, "to must be UTC milliseconds");
  if (from < 0 || to < 0) return error_response(http::status::bad_request, "from and to must not be negative");
  if (from > to) return error_response(http::status::bad_request, "from must not be after to");
  auto points = src_.store->query_history(scope, id, from, to, 10000);
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
