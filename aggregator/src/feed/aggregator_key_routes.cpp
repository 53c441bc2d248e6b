// The aggregator's own key rotation (docs/security.md, "The aggregator's key"):
// GET /api/v1/aggregator-key, and with an operator token POST /api/v1/aggregator-key/next
// (prepare the successor, which every confirmation then announces) and
// POST /api/v1/aggregator-key/switch (sign with it; refused while an enrolled agent has not
// reported trusting it, unless ?force=true).
#include "feed/aggregator_key_routes.hpp"

#include "postwatch/clock.hpp"
#include "postwatch/signing.hpp"
#include "trust/agent_trust.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <stdexcept>

namespace postwatch::aggregator {
using nlohmann::json;

namespace {
constexpr std::size_t kListedAgents = 100;

// The instances of a cluster sign with one key the operator provisioned to each (docs/security.md,
// "Clusters"): rotating it on one instance would leave the others signing with the old one.
constexpr const char* kClustered =
    "this aggregator is an instance of a cluster, whose instances share one key the operator provisioned to each: "
    "the aggregator's key is not rotated in a cluster yet (docs/security.md, \"Limits\")";

// Names are listed per group up to kListedAgents; the counts are complete.

void list_agent(json& list, const std::string& name) {
  if (list.size() < kListedAgents) list.push_back(name);
}
}  // namespace

json AggregatorKeyRoutes::aggregator_key_json() const {
  const auto& trust = *trust_;
  const SigningKey* next = trust.next_key();
  const auto retired = trust.retired_key_ids();
  // Every enrolled agent, by what its last birth or heartbeat said it trusts.
  std::size_t enrolled = 0, with_next = 0, without_next = 0, unreported = 0, with_retired = 0, with_other = 0;
  json missing = json::array(), silent = json::array(), retiring = json::array(), other = json::array();
  for (const auto* k : trust.keys().all()) {
    if (!k->in_force()) continue;
    ++enrolled;
    auto post = catalogue_.post_index(k->post);
    const AgentRecord* r = post ? agents_.find(*post, k->agent) : nullptr;
    const std::string name = k->post + "/" + k->agent;
    if (!r || r->presence.aggregator_key_ids.empty()) {
      ++unreported;
      list_agent(silent, name);
      continue;
    }
    const auto& ids = r->presence.aggregator_key_ids;
    auto has = [&](const std::string& id) { return std::find(ids.begin(), ids.end(), id) != ids.end(); };
    if (next && has(next->key_id())) {
      ++with_next;
    } else if (next) {
      ++without_next;
      list_agent(missing, name);
    }
    if (std::any_of(retired.begin(), retired.end(), has)) {
      ++with_retired;
      list_agent(retiring, name);
    }
    // A key that is none of ours: put in its file by hand, or announced by whoever held a key
    // of ours (a stolen key can announce a "next" key of the thief's).
    auto ours = [&](const std::string& id) {
      return id == trust.signer().key_id() || (next && id == next->key_id()) ||
             std::find(retired.begin(), retired.end(), id) != retired.end();
    };
    if (!std::all_of(ids.begin(), ids.end(), ours)) {
      ++with_other;
      list_agent(other, name);
    }
  }
  json agents{{"enrolled", enrolled},
              {"not_reported", unreported},
              {"not_reported_agents", std::move(silent)},
              {"still_trusting_retired", with_retired},
              {"still_trusting_retired_agents", std::move(retiring)},
              {"trusting_other_keys", with_other},
              {"trusting_other_keys_agents", std::move(other)}};
  if (next) {
    agents["trusting_next"] = with_next;
    agents["not_trusting_next"] = without_next;
    agents["not_trusting_next_agents"] = std::move(missing);
  }
  const auto& signer = trust.signer();
  return {{"key_id", signer.key_id()},
          {"public_key", to_hex(signer.public_key())},
          {"next_key_id", next ? json(next->key_id()) : json(nullptr)},
          {"next_public_key", next ? json(to_hex(next->public_key())) : json(nullptr)},
          {"retired_key_ids", retired},
          {"ready_to_switch", next != nullptr && with_next == enrolled},
          {"agents", std::move(agents)},
          {"switches", trust.counters().aggregator_key_switches}};
}

HttpResponse AggregatorKeyRoutes::aggregator_key() const {
  if (!trust_) return error_response(http::status::service_unavailable, "the aggregator's key is not kept here");
  return json_response(http::status::ok, aggregator_key_json());
}

bool AggregatorKeyRoutes::clustered() const { return cluster_ && cluster_().value("clustered", false); }

HttpResponse AggregatorKeyRoutes::prepare_aggregator_key(const Principal* who) {
  if (!trust_) return error_response(http::status::service_unavailable, "the aggregator's key is not kept here");
  if (clustered()) return error_response(http::status::conflict, kClustered);
  const bool had = trust_->next_key() != nullptr;
  try {
    trust_->prepare_next_key(who ? who->name : std::string());
  } catch (const std::runtime_error& e) {
    return error_response(http::status::internal_server_error, std::string("the next key was not made: ") + e.what());
  }
  return json_response(had ? http::status::ok : http::status::created, aggregator_key_json());
}

HttpResponse AggregatorKeyRoutes::switch_aggregator_key(const HttpQuery& q, const Principal* who) {
  if (!trust_) return error_response(http::status::service_unavailable, "the aggregator's key is not kept here");
  if (clustered()) return error_response(http::status::conflict, kClustered);
  if (!trust_->next_key())
    return error_response(http::status::conflict,
                          "no next key is prepared: POST /api/v1/aggregator-key/next first, then wait until every "
                          "enrolled agent reports trusting it (GET /api/v1/aggregator-key)");
  auto force = q.find("force");
  const bool forced = force != q.end() && (force->second == "true" || force->second == "1");
  auto status = aggregator_key_json();
  if (!status["ready_to_switch"].get<bool>() && !forced) {
    const auto& a = status["agents"];
    auto body =
        json{{"error",
              {{"status", 409},
               {"message", "not every enrolled agent reports trusting the next key " +
                               status["next_key_id"].get<std::string>() + ": " +
                               std::to_string(a["not_trusting_next"].get<std::size_t>()) + " do not and " +
                               std::to_string(a["not_reported"].get<std::size_t>()) +
                               " have not said (they would ignore every confirmation after the switch, and keep "
                               "their spools). Wait for their heartbeats, or switch with ?force=true"}}},
             {"aggregator_key", std::move(status)}};
    return json_response(http::status::conflict, body);
  }
  try {
    auto s = trust_->switch_key(who ? who->name : std::string(), now_utc_ms());
    auto out = aggregator_key_json();
    out["switched_from"] = s.from;
    out["unused_tokens_naming_old_key"] = s.unused_tokens;
    out["forced"] = forced;
    return json_response(http::status::ok, out);
  } catch (const std::exception& e) {
    return error_response(http::status::internal_server_error,
                          std::string("the switch did not happen (the old key still signs): ") + e.what());
  }
}

}  // namespace postwatch::aggregator
