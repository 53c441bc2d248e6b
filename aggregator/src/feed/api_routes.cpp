#include "feed/api_routes.hpp"

#include "postwatch/clock.hpp"
#include "postwatch/wire_codec.hpp"

#include <nlohmann/json.hpp>

#include <charconv>

namespace postwatch::aggregator {
using nlohmann::json;

namespace {

HttpResponse json_response(http::status status, const json& body) {
  HttpResponse res{status, 11};
  res.set(http::field::content_type, "application/json");
  res.set(http::field::cache_control, "no-store");
  res.set(http::field::access_control_allow_origin, "*");
  res.body() = body.dump();
  return res;
}

HttpResponse error_response(http::status status, const std::string& message) {
  return json_response(status, json{{"error", {{"status", static_cast<int>(status)}, {"message", message}}}});
}

double round2(double v) { return std::round(v * 100.0) / 100.0; }

json indicator_json(const IndicatorCatalogue& cat, const IndicatorRollup& r) {
  const Indicator& ind = cat.indicators()[r.indicator];
  json j{{"id", ind.id},
         {"name", ind.name},
         {"kind", to_string(ind.kind)},
         {"unit", ind.unit},
         {"status", to_string(r.status)},
         {"posts_reporting", r.posts_reporting},
         {"posts_amber", r.posts_amber},
         {"posts_red", r.posts_red},
         {"amber", ind.amber},
         {"red", ind.red},
         {"aggregation", to_string(ind.aggregation)}};
  j["value"] = r.posts_reporting ? json(r.value) : json(nullptr);
  j["severity"] = round2(r.severity);
  return j;
}

json goal_json(const IndicatorCatalogue& cat, const GoalRollupResult& g, bool detail) {
  const Goal* goal = cat.find_goal(g.goal);
  json j{{"id", g.goal},
         {"name", goal->name},
         {"pillar", goal->pillar},
         {"status", to_string(g.status)},
         {"score", round2(g.score)},
         {"indicators_reporting", g.indicators_reporting},
         {"indicators_total", g.indicators.size()},
         {"posts_reporting", g.posts_reporting}};
  if (detail) {
    j["aims"] = goal->aims;
    json inds = json::array();
    for (const auto& r : g.indicators) inds.push_back(indicator_json(cat, r));
    j["indicators"] = std::move(inds);
  }
  return j;
}

}  // namespace

ApiRoutes::ApiRoutes(FeedSources sources) : src_(std::move(sources)), catalogue_(src_.catalogue), state_(src_.state) {}

const RollupSnapshot& ApiRoutes::snapshot() {
  if (!have_snapshot_ || snapshot_.state_version != state_.version()) {
    snapshot_ = src_.rollup.compute(state_);
    have_snapshot_ = true;
  }
  return snapshot_;
}

HttpResponse ApiRoutes::handle(const HttpRequest& req) {
  std::string_view target(req.target().data(), req.target().size());
  if (auto q = target.find('?'); q != std::string_view::npos) target = target.substr(0, q);
  if (req.method() != http::verb::get && req.method() != http::verb::head)
    return error_response(http::status::method_not_allowed, "only GET is supported on " + std::string(target));

  if (target == "/healthz") return json_response(http::status::ok, {{"status", "ok"}});
  if (target == "/readyz") {
    bool ready = src_.ready && src_.ready();
    return json_response(ready ? http::status::ok : http::status::service_unavailable,
                         {{"status", ready ? "ready" : "not ready"}, {"mqtt_subscribed", ready}});
  }

  const auto& snap = snapshot();
  if (target == "/api/v1/goals" || target == "/api/v1/goals/") {
    json pillars = json::array();
    for (std::size_t i = 0; i < snap.pillars.size(); ++i) {
      const auto& p = catalogue_.pillars()[i];
      const auto& pr = snap.pillars[i];
      pillars.push_back({{"id", p.id},
                         {"name", p.name},
                         {"status", to_string(pr.status)},
                         {"score", round2(pr.score)},
                         {"goals", p.goals}});
    }
    json goals = json::array();
    for (const auto& g : snap.goals) goals.push_back(goal_json(catalogue_, g, false));
    return json_response(http::status::ok, {{"generated_at_ms", now_utc_ms()},
                                            {"state_version", snap.state_version},
                                            {"pillars", std::move(pillars)},
                                            {"goals", std::move(goals)}});
  }
  constexpr std::string_view goal_prefix = "/api/v1/goals/";
  if (target.substr(0, goal_prefix.size()) == goal_prefix) {
    auto id_text = target.substr(goal_prefix.size());
    int id = 0;
    auto [ptr, ec] = std::from_chars(id_text.data(), id_text.data() + id_text.size(), id);
    if (ec != std::errc() || ptr != id_text.data() + id_text.size())
      return error_response(http::status::bad_request, "goal id must be a number, got '" + std::string(id_text) + "'");
    for (const auto& g : snap.goals)
      if (g.goal == id) return json_response(http::status::ok, goal_json(catalogue_, g, true));
    return error_response(http::status::not_found, "no goal " + std::to_string(id) + " (goals are 1-" +
                                                       std::to_string(catalogue_.goals().size()) + ")");
  }
  if (target == "/api/v1/posts") {
    json posts = json::array();
    for (std::uint32_t p = 0; p < catalogue_.posts().size(); ++p) {
      const Post& post = catalogue_.posts()[p];
      Status worst = Status::Unknown;
      std::uint32_t reporting = 0;
      for (std::uint32_t i = 0; i < catalogue_.indicators().size(); ++i) {
        const Reading& r = state_.at(p, i);
        if (!r.present || catalogue_.indicators()[i].kind == ValueKind::Text) continue;
        worst = std::max(worst, classify(catalogue_.indicators()[i], r.number));
        ++reporting;
      }
      posts.push_back({{"id", post.id},
                       {"city", post.city},
                       {"country", post.country},
                       {"region", post.region},
                       {"status", to_string(worst)},
                       {"indicators_reporting", reporting},
                       {"last_seen_ms", state_.post_last_seen_ms(p)}});
    }
    return json_response(http::status::ok, {{"posts", std::move(posts)}});
  }
  constexpr std::string_view post_prefix = "/api/v1/posts/";
  if (target.substr(0, post_prefix.size()) == post_prefix) {
    auto id = target.substr(post_prefix.size());
    auto p = catalogue_.post_index(id);
    if (!p) return error_response(http::status::not_found, "no post '" + std::string(id) + "'");
    const Post& post = catalogue_.posts()[*p];
    json inds = json::array();
    for (std::uint32_t i = 0; i < catalogue_.indicators().size(); ++i) {
      const Reading& r = state_.at(*p, i);
      if (!r.present) continue;
      const Indicator& ind = catalogue_.indicators()[i];
      json j{{"id", ind.id},
             {"name", ind.name},
             {"observed_at_ms", r.observed_at_ms},
             {"received_at_ms", r.received_at_ms}};
      if (ind.kind == ValueKind::Text) {
        j["text"] = state_.text_at(*p, i);
        j["status"] = "unknown";
      } else {
        j["value"] = r.number;
        j["status"] = to_string(classify(ind, r.number));
      }
      inds.push_back(std::move(j));
    }
    return json_response(http::status::ok, {{"id", post.id},
                                            {"city", post.city},
                                            {"country", post.country},
                                            {"region", post.region},
                                            {"last_seen_ms", state_.post_last_seen_ms(*p)},
                                            {"indicators", std::move(inds)}});
  }
  if (target == "/api/v1/stats") return stats();
  if (target == "/api/v1/agents") return agents();
  return error_response(http::status::not_found, "no such endpoint: " + std::string(target) +
                                                     " (try /api/v1/goals, /api/v1/goals/{id}, /api/v1/posts, "
                                                     "/api/v1/posts/{id}, /api/v1/agents, /api/v1/stats, /healthz)");
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
                     {"reordered", it->second.reordered}};
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
                      {"last_event_ms", a.last_event_ms}});
  return json_response(http::status::ok, {{"batches_accepted", c.batches_accepted},
                                          {"batches_rejected", c.batches_rejected()},
                                          {"batches_undecodable", undecodable},
                                          {"batches_bad_topic", c.batches_bad_topic},
                                          {"batches_topic_mismatch", c.batches_topic_mismatch},
                                          {"batches_unknown_post", c.batches_unknown_post},
                                          {"events_accepted", c.events_accepted},
                                          {"events_duplicate", c.events_duplicate},
                                          {"events_unknown_indicator", c.events_unknown_indicator},
                                          {"events_bad_value", c.events_bad_value},
                                          {"events_gaps", c.events_gaps},
                                          {"events_reordered", c.events_reordered},
                                          {"agent_states_rejected", src_.presence.rejected()},
                                          {"agents_online", src_.presence.online_count()},
                                          {"agents", std::move(agents)}});
}

}  // namespace postwatch::aggregator
