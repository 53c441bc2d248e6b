// /api/v1/targets and /api/v1/goals/{id}/progress: strategy progress from the ministry's readings
// in the store (docs/strategy-progress.md, "The API").
#include "feed/progress_routes.hpp"

#include "feed/progress_json.hpp"
#include "feed/snapshot_json.hpp"
#include "postwatch/clock.hpp"
#include "store/event_store.hpp"

namespace postwatch::aggregator {
using nlohmann::json;

std::optional<HttpResponse> ProgressRoutes::assess_progress(const HttpQuery& q, StrategyProgress& out) const {
  if (!src_.store) return error_response(http::status::service_unavailable, "strategy progress needs the store");
  auto arg = [&](const char* key) { return q.count(key) ? std::optional<std::string>(q.at(key)) : std::nullopt; };
  std::string error;
  auto period = parse_progress_period(arg("from"), arg("at"), now_utc_ms(), error);
  if (!period) return error_response(http::status::bad_request, error);
  static const TargetCatalogue kNone;
  out = assess_strategy(src_.targets ? *src_.targets : kNone, reading_series(src_.store->query_strategy_readings()),
                        period->from_ms, period->at_ms);
  return std::nullopt;
}

HttpResponse ProgressRoutes::targets(const HttpQuery& q) const {
  StrategyProgress p;
  if (auto refusal = assess_progress(q, p)) return *refusal;
  return json_response(http::status::ok, targets_json(p, src_.catalogue));
}

HttpResponse ProgressRoutes::goal_progress(std::string_view id_text, const HttpQuery& q) const {
  int id = 0;
  if (!parse_int(id_text, id))
    return error_response(http::status::bad_request, "goal id must be a number, got '" + std::string(id_text) + "'");
  const auto& goals = src_.catalogue.goals();
  auto g = std::find_if(goals.begin(), goals.end(), [&](const Goal& x) { return x.id == id; });
  if (g == goals.end()) return error_response(http::status::not_found, "no goal " + std::to_string(id));
  StrategyProgress p;
  if (auto refusal = assess_progress(q, p)) return *refusal;
  auto operational = goal_snapshot_json(src_.catalogue, src_.board, static_cast<std::size_t>(g - goals.begin()));
  return json_response(http::status::ok, goal_progress_json(p, *g, std::move(operational)));
}

void ProgressRoutes::report(const HttpRequest& req, std::string_view target, const HttpQuery& q,
                            const HttpReply& reply) const {
  if (req.method() != http::verb::get && req.method() != http::verb::head) {
    reply(method_not_allowed(req, target, "GET, HEAD"));
    return;
  }
  auto arg = [&](const char* key) { return q.count(key) ? std::optional<std::string>(q.at(key)) : std::nullopt; };
  const std::string format = q.count("format") ? q.at("format") : "html";
  if (format != "html" && format != "csv") {
    reply(error_response(http::status::bad_request, "format must be html or csv"));
    return;
  }
  std::string error;
  auto period = parse_progress_period(arg("from"), arg("to"), now_utc_ms(), error, "to");
  if (!period) {
    reply(error_response(http::status::bad_request, error));
    return;
  }
  if (!report_) {
    reply(error_response(http::status::service_unavailable, "the report needs the store"));
    return;
  }
  report_(period->from_ms, period->at_ms, format == "csv", reply);
}

}  // namespace postwatch::aggregator
