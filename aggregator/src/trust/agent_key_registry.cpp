#include "trust/agent_key_registry.hpp"

namespace postwatch::aggregator {

std::string_view to_string(SignatureVerdict v) {
  switch (v) {
    case SignatureVerdict::Signed: return "signed";
    case SignatureVerdict::Unsigned: return "unsigned";
    case SignatureVerdict::RefusedUnsigned: return "unsigned_refused";
    case SignatureVerdict::BadSignature: return "bad_signature";
    case SignatureVerdict::UnknownKey: return "unknown_key";
    case SignatureVerdict::RevokedKey: return "revoked_key";
  }
  return "unknown";
}

nlohmann::json to_json(const AgentKey& k) {
  return {{"post", k.post},
          {"agent", k.agent},
          {"key_id", k.key_id},
          {"public_key", to_hex(k.key)},
          {"enrolled_at_ms", k.enrolled_at_ms},
          {"revoked_at_ms", k.revoked_at_ms},
          {"token_id", k.token_id}};
}

bool from_json(const nlohmann::json& j, AgentKey& out) {
  if (!j.is_object()) return false;
  try {
    out.post = j.at("post").get<std::string>();
    out.agent = j.at("agent").get<std::string>();
    auto key = public_key_from_hex(j.at("public_key").get<std::string>());
    if (!key) return false;
    out.key = *key;
    out.key_id = key_id_of(out.key);
    out.enrolled_at_ms = j.value("enrolled_at_ms", std::int64_t{0});
    out.revoked_at_ms = j.value("revoked_at_ms", std::int64_t{0});
    out.token_id = j.value("token_id", std::string());
  } catch (const nlohmann::json::exception&) {
    return false;
  }
  return !out.post.empty() && !out.agent.empty();
}

const AgentKeyRegistry::Keys* AgentKeyRegistry::keys_of(std::string_view post, std::string_view agent) const {
  auto p = by_post_.find(post);
  if (p == by_post_.end()) return nullptr;
  auto a = p->second.find(agent);
  return a == p->second.end() ? nullptr : &a->second;
}

SignatureVerdict AgentKeyRegistry::check(std::string_view post, std::string_view agent, std::string_view key_id,
                                         std::span<const std::uint8_t> payload, std::size_t signature_offset) const {
  const Keys* keys = keys_of(post, agent);
  if (signature_offset == 0) {
    bool enrolled = false;
    if (keys)
      for (const auto& k : *keys) enrolled |= !k.revoked();
    return enrolled || require_signatures_ ? SignatureVerdict::RefusedUnsigned : SignatureVerdict::Unsigned;
  }
  if (!keys) return SignatureVerdict::UnknownKey;
  for (const auto& k : *keys) {
    if (k.key_id != key_id) continue;
    if (k.revoked()) return SignatureVerdict::RevokedKey;
    const bool ok = k.verifier ? k.verifier->verify_payload(payload, signature_offset)
                               : verify_payload(payload, signature_offset, k.key);
    return ok ? SignatureVerdict::Signed : SignatureVerdict::BadSignature;
  }
  return SignatureVerdict::UnknownKey;
}

const AgentKey* AgentKeyRegistry::in_force(std::string_view post, std::string_view agent) const {
  if (const Keys* keys = keys_of(post, agent))
    for (const auto& k : *keys)
      if (!k.revoked()) return &k;
  return nullptr;
}

const AgentKey* AgentKeyRegistry::find(std::string_view post, std::string_view agent, std::string_view key_id) const {
  if (const Keys* keys = keys_of(post, agent))
    for (const auto& k : *keys)
      if (k.key_id == key_id) return &k;
  return nullptr;
}

void AgentKeyRegistry::add(AgentKey key) {
  if (!key.verifier) key.verifier = std::make_shared<const VerifyKey>(key.key);
  auto& keys = by_post_[key.post][key.agent];
  for (auto& k : keys)
    if (k.key_id == key.key_id) {  // the same key again (a store row read twice): keep the newer word
      if (!k.revoked() && key.revoked()) --in_force_;
      if (k.revoked() && !key.revoked()) ++in_force_;
      k = std::move(key);
      return;
    }
  if (!key.revoked()) ++in_force_;
  keys.push_back(std::move(key));
}

const AgentKey* AgentKeyRegistry::revoke(std::string_view post, std::string_view agent, std::int64_t now_ms) {
  auto p = by_post_.find(post);
  if (p == by_post_.end()) return nullptr;
  auto a = p->second.find(agent);
  if (a == p->second.end()) return nullptr;
  for (auto& k : a->second)
    if (!k.revoked()) {
      k.revoked_at_ms = now_ms;
      --in_force_;
      return &k;
    }
  return nullptr;
}

std::vector<const AgentKey*> AgentKeyRegistry::all() const {
  std::vector<const AgentKey*> out;
  for (const auto& [post, agents] : by_post_)
    for (const auto& [agent, keys] : agents)
      for (const auto& k : keys) out.push_back(&k);
  return out;
}

}  // namespace postwatch::aggregator
