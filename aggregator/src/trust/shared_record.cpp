#include "trust/shared_record.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <tuple>

namespace postwatch::aggregator {
using nlohmann::json;

std::string agent_entry_key(std::string_view post, std::string_view agent) {
  return "agent." + std::string(post) + "." + std::string(agent);
}
std::string token_entry_key(std::string_view token_id) { return "token." + std::string(token_id); }
std::string signer_entry_key(std::string_view instance) { return "signer." + std::string(instance); }

namespace {
std::vector<std::uint8_t> sealed_message(std::string_view group, std::string_view entry_key, std::string_view body) {
  std::string m = "postwatch-trust-entry-v1";
  for (auto part : {group, entry_key, body}) {
    m.push_back('\0');
    m.append(part);
  }
  return {m.begin(), m.end()};
}
}  // namespace

std::string seal_entry(const SigningKey& key, std::string_view group, std::string_view entry_key,
                       const std::string& body) {
  auto signature = key.sign(sealed_message(group, entry_key, body));
  return json{{"body", body}, {"key_id", key.key_id()}, {"signature", to_hex(signature)}}.dump();
}

OpenedEntry open_entry(const PublicKey& key, std::string_view group, std::string_view entry_key,
                       std::string_view value) {
  OpenedEntry out;
  auto j = json::parse(value, nullptr, false);
  if (!j.is_object() || !j["body"].is_string() || !j["signature"].is_string()) {
    out.why = "not a sealed entry";
    return out;
  }
  out.body = j["body"].get<std::string>();
  out.key_id = j.value("key_id", "");
  Signature signature{};
  if (!from_hex(j["signature"].get<std::string>(), signature)) {
    out.why = "its signature is not 64 bytes of hex";
    return out;
  }
  out.verified = verify_signature(key, sealed_message(group, entry_key, out.body), signature);
  if (!out.verified)
    out.why = out.key_id == key_id_of(key) ? "its signature does not verify with the aggregator key"
                                           : "it is signed by key " + out.key_id + ", not the aggregator key";
  return out;
}

std::string agent_record_body(const std::vector<AgentKey>& keys) {
  auto list = json::array();
  for (const auto& k : keys) list.push_back(to_json(k));
  return json{{"keys", std::move(list)}}.dump();
}

bool parse_agent_record(const std::string& body, std::vector<AgentKey>& out) {
  out.clear();
  auto j = json::parse(body, nullptr, false);
  if (!j.is_object() || !j["keys"].is_array()) return false;
  for (const auto& each : j["keys"]) {
    AgentKey k;
    if (!from_json(each, k)) return false;
    out.push_back(std::move(k));
  }
  return true;
}

std::vector<AgentKey> merge_keys(std::vector<AgentKey> into, const std::vector<AgentKey>& from) {
  for (const auto& k : from) {
    auto same = std::find_if(into.begin(), into.end(), [&](const AgentKey& each) { return each.key_id == k.key_id; });
    if (same == into.end())
      into.push_back(k);
    else
      merge_key(*same, k);
  }
  std::sort(into.begin(), into.end(), [](const AgentKey& a, const AgentKey& b) {
    return std::tie(a.enrolled_at_ms, a.key_id) < std::tie(b.enrolled_at_ms, b.key_id);
  });
  return into;
}

bool same_keys(const std::vector<AgentKey>& a, const std::vector<AgentKey>& b) {
  return agent_record_body(merge_keys({}, a)) == agent_record_body(merge_keys({}, b));
}

AgentDecision decide_on_record(const std::vector<std::uint8_t>& enrolment_secret, const SigningKey& aggregator_key,
                               const std::vector<AgentKey>& keys, std::optional<IssuedToken> token,
                               const EnrolRequest& request, std::span<const std::uint8_t> payload, std::int64_t now_ms,
                               std::int64_t grace_ms) {
  AgentKeyRegistry registry;
  for (const auto& k : keys) registry.add(k);
  EnrolmentDesk desk(enrolment_secret, aggregator_key, registry);
  if (token) {
    mark_used(*token, keys);
    desk.load(std::move(*token));
  }
  auto outcome = desk.redeem(request, payload, now_ms, grace_ms);
  AgentDecision out{std::move(outcome.reply), outcome.changed, {}};
  for (const auto* k : registry.all()) {
    out.keys.push_back(*k);
    out.keys.back().verifier.reset();
  }
  return out;
}

}  // namespace postwatch::aggregator
