// /api/v1/rollouts: staged rollouts of fleet bundles (docs/fleet.md, "Rollouts"). Listing needs
// a read token; starting, pausing, resuming and aborting one need an operator token, as
// acknowledging an alarm does. The bundle comes signed: the aggregator never holds the fleet's
// private key.
#include "feed/rollout_routes.hpp"

#include "postwatch/clock.hpp"
#include "rollouts/rollout_desk.hpp"

#include <nlohmann/json.hpp>

namespace postwatch::aggregator {
using nlohmann::json;

namespace {

HttpResponse rollout_error(const RolloutError& e) {
  return error_response(static_cast<http::status>(e.status), e.what());
}

json summary(const RolloutPlan& p, const RolloutDesk& desk) {
  json j = p.to_json();
  j.erase("bundle");  // the signed text: large, and nothing an operator reads here
  if (auto v = desk.catalogue_version(p); v != 0) {
    j["catalogue_version"] = v;
    if (desk.waits_for_catalogue(p)) j["waiting_for"] = "the aggregator to run catalogue_version " + std::to_string(v);
  }
  return j;
}

// A whole number from 0 to `hi` in `body[key]`, or `fallback` when absent.
template <typename Int>
Int number(const json& body, const char* key, Int fallback, std::int64_t hi) {
  auto it = body.find(key);
  if (it == body.end()) return fallback;
  if (!it->is_number_integer() || it->get<std::int64_t>() < 0 || it->get<std::int64_t>() > hi)
    throw RolloutError(400, std::string(key) + " must be a whole number from 0 to " + std::to_string(hi));
  return static_cast<Int>(it->get<std::int64_t>());
}

}  // namespace

HttpResponse RolloutRoutes::rollouts() const {
  if (!rollouts_) return error_response(http::status::service_unavailable, "rollouts are not configured");
  json list = json::array();
  const auto& all = rollouts_->rollouts();
  for (auto it = all.rbegin(); it != all.rend(); ++it) list.push_back(summary(it->second, *rollouts_));  // newest first
  return json_response(
      http::status::ok,
      {{"enabled", rollouts_->enabled()}, {"catalogue_version", catalogue_.version()}, {"rollouts", std::move(list)}});
}

HttpResponse RolloutRoutes::rollout(std::string_view id_text) const {
  if (!rollouts_) return error_response(http::status::service_unavailable, "rollouts are not configured");
  std::uint64_t id = 0;
  if (!parse_int(id_text, id))
    return error_response(http::status::bad_request, "rollout id must be a number, got '" + std::string(id_text) + "'");
  const RolloutPlan* p = rollouts_->find(id);
  if (!p) return error_response(http::status::not_found, "no rollout " + std::to_string(id));
  return json_response(http::status::ok, summary(*p, *rollouts_));
}

HttpResponse RolloutRoutes::create_rollout(const HttpRequest& req, const Principal* who) {
  if (!rollouts_) return error_response(http::status::service_unavailable, "rollouts are not configured");
  if (auto refusal = refuse_non_json(req)) return *refusal;
  auto body = json::parse(req.body(), nullptr, false);
  if (!body.is_object()) return error_response(http::status::bad_request, "the body is not a JSON object");
  auto bundle = body.find("bundle");
  if (bundle == body.end() || !(bundle->is_object() || bundle->is_string()))
    return error_response(http::status::bad_request,
                          "bundle: the signed bundle postwatch-fleet sign wrote, as a JSON object (or its text)");
  try {
    RolloutPolicy policy;
    policy.canary_percent = number(body, "canary_percent", policy.canary_percent, 100);
    policy.wave_percent = number(body, "wave_percent", policy.wave_percent, 100);
    policy.wave_interval_ms = number(body, "wave_interval_s", policy.wave_interval_ms / 1000, 7 * 86400) * 1000;
    policy.max_failed_percent = number(body, "max_failed_percent", policy.max_failed_percent, 100);
    std::vector<RolloutCandidate> agents;
    // Online agents only: the waves wait for the answers of those they reach. One offline now
    // takes the bundle from its target's topic (retained) when it comes back.
    for (const auto& r : agents_) {
      if (!r.has_presence || !r.presence.has_fleet || !r.presence.online) continue;
      const auto& post = catalogue_.posts()[r.post];
      agents.push_back({post.region, post.id, r.name, &r.presence.fleet});
    }
    const auto text = bundle->is_string() ? bundle->get<std::string>() : bundle->dump();
    const auto& plan =
        rollouts_->create(text, policy, who ? who->name : std::string("anonymous"), agents, now_utc_ms());
    return json_response(http::status::created, summary(plan, *rollouts_));
  } catch (const RolloutError& e) {
    return rollout_error(e);
  }
}

HttpResponse RolloutRoutes::change_rollout(std::string_view id_text, std::string_view action, const Principal* who) {
  if (!rollouts_) return error_response(http::status::service_unavailable, "rollouts are not configured");
  std::uint64_t id = 0;
  if (!parse_int(id_text, id))
    return error_response(http::status::bad_request, "rollout id must be a number, got '" + std::string(id_text) + "'");
  try {
    const auto now = now_utc_ms();
    const std::string by = who ? who->name : std::string("anonymous");
    if (action == "pause") return json_response(http::status::ok, summary(rollouts_->pause(id, now), *rollouts_));
    if (action == "resume") return json_response(http::status::ok, summary(rollouts_->resume(id, now), *rollouts_));
    if (action == "abort") return json_response(http::status::ok, summary(rollouts_->abort(id, by, now), *rollouts_));
  } catch (const RolloutError& e) {
    return rollout_error(e);
  }
  return error_response(http::status::not_found, "no such action: " + std::string(action) + " (pause, resume, abort)");
}

}  // namespace postwatch::aggregator
