#include "feed/post_routes.hpp"

#include "feed/agent_routes.hpp"
#include "postwatch/clock.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>

namespace postwatch::aggregator {
using nlohmann::json;

std::vector<bool> PostRoutes::goal_mask(int goal) const {
  const auto& inds = src_.catalogue.indicators();
  std::vector<bool> mask(inds.size(), false);
  for (std::size_t i = 0; i < inds.size(); ++i)
    for (const auto& gw : inds[i].goals)
      if (gw.goal == goal && inds[i].kind != ValueKind::Text) mask[i] = true;
  return mask;
}

void PostRoutes::add_maintenance(json& post_json, std::uint32_t post) const {
  if (src_.maintenance && post < src_.maintenance->size() && (*src_.maintenance)[post] != 0)
    post_json["maintenance"] = (*src_.maintenance)[post];
}

bool PostRoutes::is_silent(std::uint32_t post) const {
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
std::optional<HttpResponse> parse_goal_filter(const IndicatorCatalogue& cat, const HttpQuery& q, int& goal) {
  goal = 0;
  auto it = q.find("goal");
  if (it == q.end()) return std::nullopt;
  if (!parse_int(std::string_view(it->second), goal))
    return error_response(http::status::bad_request, "goal must be a number, got '" + it->second + "'");
  if (!cat.find_goal(goal)) return error_response(http::status::not_found, "no goal " + it->second);
  return std::nullopt;
}

}  // namespace

HttpResponse PostRoutes::regions(const HttpQuery& q) const {
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

std::uint64_t PostRoutes::events_lost(std::uint32_t post) const {
  std::uint64_t lost = 0;
  for (auto aid : src_.agents.at_post(post)) {
    const AgentRecord& a = src_.agents[aid];
    if (a.has_events) lost += a.events.seqs.gaps();
  }
  return lost;
}

HttpResponse PostRoutes::posts(const HttpQuery& q) const {
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

HttpResponse PostRoutes::post(std::string_view id) const {
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

}  // namespace postwatch::aggregator
