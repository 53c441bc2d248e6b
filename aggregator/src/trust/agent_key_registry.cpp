#include "trust/agent_key_registry.hpp"

#include "trust/sodium_ed25519.hpp"

#include <algorithm>

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
          {"retires_at_ms", k.retires_at_ms},
          {"token_id", k.token_id},
          {"rotated_from", k.rotated_from}};
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
    out.retires_at_ms = j.value("retires_at_ms", std::int64_t{0});
    out.token_id = j.value("token_id", std::string());
    out.rotated_from = j.value("rotated_from", std::string());
  } catch (const nlohmann::json::exception&) {
    return false;
  }
  return !out.post.empty() && !out.agent.empty();
}

namespace {
// The earlier of two times, 0 meaning "not yet".
bool take_earlier(std::int64_t& into, std::int64_t from) {
  if (from == 0 || (into != 0 && into <= from)) return false;
  into = from;
  return true;
}
bool take_if_empty(std::string& into, const std::string& from) {
  if (!into.empty() || from.empty()) return false;
  into = from;
  return true;
}
}  // namespace

bool merge_key(AgentKey& into, const AgentKey& from) {
  bool changed = take_earlier(into.revoked_at_ms, from.revoked_at_ms);
  changed |= take_earlier(into.retires_at_ms, from.retires_at_ms);
  changed |= take_if_empty(into.token_id, from.token_id);
  changed |= take_if_empty(into.rotated_from, from.rotated_from);
  return changed;
}

const AgentKeyRegistry::Keys* AgentKeyRegistry::keys_of(std::string_view post, std::string_view agent) const {
  auto p = by_post_.find(post);
  if (p == by_post_.end()) return nullptr;
  auto a = p->second.find(agent);
  return a == p->second.end() ? nullptr : &a->second;
}

SignatureVerdict AgentKeyRegistry::check(std::string_view post, std::string_view agent, std::string_view key_id,
                                         std::span<const std::uint8_t> payload, std::size_t signature_offset,
                                         std::int64_t now_ms, const VerifyKey* verified) const {
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
    if (!k.valid_at(now_ms)) return SignatureVerdict::RevokedKey;
    if (verified && verified == k.verifier.get()) return SignatureVerdict::Signed;
    // add() made the verifier (libsodium's check, with the key decoded once).
    return k.verifier->verify_payload(payload, signature_offset) ? SignatureVerdict::Signed
                                                                 : SignatureVerdict::BadSignature;
  }
  return SignatureVerdict::UnknownKey;
}

const AgentKey* AgentKeyRegistry::in_force(std::string_view post, std::string_view agent) const {
  if (const Keys* keys = keys_of(post, agent))
    for (const auto& k : *keys)
      if (k.in_force()) return &k;
  return nullptr;
}

const AgentKey* AgentKeyRegistry::find(std::string_view post, std::string_view agent, std::string_view key_id) const {
  if (const Keys* keys = keys_of(post, agent))
    for (const auto& k : *keys)
      if (k.key_id == key_id) return &k;
  return nullptr;
}

bool AgentKeyRegistry::has_key_in_force(const Keys& keys) {
  return std::any_of(keys.begin(), keys.end(), [](const AgentKey& k) { return k.in_force(); });
}

void AgentKeyRegistry::recount(bool before, const Keys& keys) {
  ++version_;
  const bool after = has_key_in_force(keys);
  if (after && !before) ++enrolled_;
  if (before && !after) --enrolled_;
}

void AgentKeyRegistry::put(Keys& keys, AgentKey key) {
  if (!key.verifier) key.verifier = std::make_shared<const VerifyKey>(key.key, &sodium_ed25519_verify);
  for (auto& k : keys)
    if (k.key_id == key.key_id) {  // the same key again (a store row read twice): keep the newer word
      k = std::move(key);
      return;
    }
  keys.push_back(std::move(key));
}

void AgentKeyRegistry::add(AgentKey key) {
  auto& keys = by_post_[key.post][key.agent];
  const bool before = has_key_in_force(keys);
  put(keys, std::move(key));
  recount(before, keys);
}

bool AgentKeyRegistry::rotate(AgentKey next, std::int64_t retires_at_ms) {
  auto p = by_post_.find(next.post);
  if (p == by_post_.end()) return false;
  auto a = p->second.find(next.agent);
  if (a == p->second.end()) return false;
  auto current = std::find_if(a->second.begin(), a->second.end(), [](const AgentKey& k) { return k.in_force(); });
  if (current == a->second.end()) return false;
  current->retires_at_ms = retires_at_ms;
  put(a->second, std::move(next));
  recount(true, a->second);
  return true;
}

const AgentKey* AgentKeyRegistry::revoke(std::string_view post, std::string_view agent, std::int64_t now_ms) {
  auto p = by_post_.find(post);
  if (p == by_post_.end()) return nullptr;
  auto a = p->second.find(agent);
  if (a == p->second.end()) return nullptr;
  const AgentKey* was_in_force = nullptr;
  const bool before = has_key_in_force(a->second);
  for (auto& k : a->second)
    if (!k.revoked()) {
      if (k.in_force() || !was_in_force) was_in_force = &k;
      k.revoked_at_ms = now_ms;
    }
  recount(before, a->second);
  return was_in_force;
}

bool AgentKeyRegistry::merge(const AgentKey& key) {
  auto& keys = by_post_[key.post][key.agent];
  const bool before = has_key_in_force(keys);
  auto same = std::find_if(keys.begin(), keys.end(), [&](const AgentKey& k) { return k.key_id == key.key_id; });
  if (same == keys.end()) {
    put(keys, key);
  } else {
    AgentKey merged = *same;
    if (!merge_key(merged, key)) return false;
    *same = std::move(merged);
  }
  recount(before, keys);
  return true;
}

std::vector<AgentKey> AgentKeyRegistry::keys_of_agent(std::string_view post, std::string_view agent) const {
  std::vector<AgentKey> out;
  if (const Keys* keys = keys_of(post, agent)) out = *keys;
  for (auto& k : out) k.verifier.reset();
  return out;
}

std::vector<const AgentKey*> AgentKeyRegistry::all() const {
  std::vector<const AgentKey*> out;
  for (const auto& [post, agents] : by_post_)
    for (const auto& [agent, keys] : agents)
      for (const auto& k : keys) out.push_back(&k);
  return out;
}

}  // namespace postwatch::aggregator
