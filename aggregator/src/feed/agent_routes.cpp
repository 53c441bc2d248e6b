#include "feed/agent_routes.hpp"

#include "postwatch/fleet_report_json.hpp"
#include "trust/agent_trust.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>

namespace postwatch::aggregator {
using nlohmann::json;

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

HttpResponse AgentRoutes::agents() const {
  // Sorted by "post/agent", for stable output.
  std::vector<std::pair<std::string, const AgentRecord*>> sorted;
  sorted.reserve(agents_.size());
  for (const auto& r : agents_) sorted.emplace_back(agents_.key(r), &r);
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  json list = json::array();
  for (const auto& [key, r] : sorted) {
    list.push_back(agent_json(key, catalogue_.posts()[r->post].id, *r));
    add_agent_key(list.back(), catalogue_.posts()[r->post].id, r->name);
  }
  return json_response(http::status::ok, {{"online", presence_.online_count()}, {"agents", std::move(list)}});
}

HttpResponse AgentRoutes::agent(std::string_view key) const {
  const AgentRecord* r = agents_.find(key);
  if (!r)
    return error_response(http::status::not_found, "unknown agent: " + std::string(key) +
                                                       " (ids are <post>/<agent>; GET /api/v1/agents lists them)");
  auto j = agent_json(std::string(key), catalogue_.posts()[r->post].id, *r);
  add_agent_key(j, catalogue_.posts()[r->post].id, r->name);
  return json_response(http::status::ok, j);
}

json agent_clock_json(const AgentRecord& r) {
  const AgentClockRecord& c = r.clock;
  json j{{"sync", to_string(c.sync)},
         {"jumps", c.jumps},
         {"offset_ms", c.offset.measured() ? json(c.offset.estimate_ms()) : json(nullptr)},
         {"correction_ms", c.offset.correction_ms()},
         {"time_corrected", c.offset.correction_ms() != 0},
         {"events_corrected", c.events_corrected}};
  if (c.jumps > 0) j["last_jump"] = {{"ms", c.last_jump_ms}, {"at_ms", c.last_jump_at_ms}};
  return j;
}

void AgentRoutes::add_agent_key(json& agent_json, const std::string& post, const std::string& agent) const {
  const AgentKey* k = trust_ ? trust_->keys().in_force(post, agent) : nullptr;
  agent_json["key_id"] = k ? json(k->key_id) : json(nullptr);
  agent_json["enrolled_at"] = k ? json(iso_utc(k->enrolled_at_ms)) : json(nullptr);
}

}  // namespace postwatch::aggregator
