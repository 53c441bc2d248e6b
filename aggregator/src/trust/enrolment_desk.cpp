#include "trust/enrolment_desk.hpp"

#include <openssl/crypto.h>

#include <stdexcept>

namespace postwatch::aggregator {

nlohmann::json to_json(const IssuedToken& t) {
  return {{"id", t.id},
          {"post", t.post},
          {"agent", t.agent},
          {"issued_at_ms", t.issued_at_ms},
          {"expires_at_ms", t.expires_at_ms},
          {"used_at_ms", t.used_at_ms},
          {"used_by_key", t.used_by_key}};
}

bool from_json(const nlohmann::json& j, IssuedToken& out) {
  if (!j.is_object()) return false;
  try {
    out.id = j.at("id").get<std::string>();
    out.post = j.at("post").get<std::string>();
    out.agent = j.at("agent").get<std::string>();
    out.issued_at_ms = j.value("issued_at_ms", std::int64_t{0});
    out.expires_at_ms = j.at("expires_at_ms").get<std::int64_t>();
    out.used_at_ms = j.value("used_at_ms", std::int64_t{0});
    out.used_by_key = j.value("used_by_key", std::string());
  } catch (const nlohmann::json::exception&) {
    return false;
  }
  return !out.id.empty();
}

EnrolmentDesk::EnrolmentDesk(std::vector<std::uint8_t> enrolment_secret, const SigningKey& aggregator_key,
                             AgentKeyRegistry& keys)
    : enrolment_secret_(std::move(enrolment_secret)), aggregator_key_(aggregator_key), keys_(keys) {
  if (enrolment_secret_.size() < 32) throw std::invalid_argument("the enrolment secret must be 32 bytes or more");
}

namespace {
// The key a request asks to put in force (its signature by that key was checked).
AgentKey requested_key(const EnrolRequest& r, std::int64_t now_ms) {
  AgentKey k;
  k.post = r.post_id;
  k.agent = r.agent_id;
  k.key_id = r.key_id;
  k.key = r.public_key;
  k.enrolled_at_ms = now_ms;
  return k;
}
}  // namespace

TokenSecret EnrolmentDesk::secret_of(std::string_view token_id) const {
  std::string msg = "postwatch-token-v1";
  msg.push_back('\0');
  msg.append(token_id);
  return hmac_sha256(enrolment_secret_,
                     std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(msg.data()), msg.size()));
}

EnrolmentDesk::Issued EnrolmentDesk::issue(std::string post, std::string agent, std::int64_t ttl_ms,
                                           std::int64_t now_ms) {
  IssuedToken t;
  t.id = to_hex(random_bytes(8));
  t.post = std::move(post);
  t.agent = std::move(agent);
  t.issued_at_ms = now_ms;
  t.expires_at_ms = now_ms + ttl_ms;
  EnrolmentToken text{t.id, secret_of(t.id), aggregator_key_.public_key()};
  auto& kept = tokens_[t.id] = std::move(t);
  return {format_enrolment_token(text), &kept};
}

void EnrolmentDesk::load(IssuedToken token) {
  auto id = token.id;
  tokens_[id] = std::move(token);
}

void mark_used(IssuedToken& token, std::span<const AgentKey> keys) {
  if (token.used_at_ms != 0) return;
  for (const auto& k : keys)
    if (k.token_id == token.id) {
      token.used_at_ms = k.enrolled_at_ms;
      token.used_by_key = k.key_id;
      return;
    }
}

const IssuedToken* EnrolmentDesk::merge(const IssuedToken& token) {
  auto it = tokens_.find(token.id);
  if (it == tokens_.end()) return &(tokens_[token.id] = token);
  IssuedToken& known = it->second;
  if (known.used_at_ms != 0 || token.used_at_ms == 0) return nullptr;
  known.used_at_ms = token.used_at_ms;
  known.used_by_key = token.used_by_key;
  return &known;
}

const IssuedToken* EnrolmentDesk::find(std::string_view token_id) const {
  auto it = tokens_.find(token_id);
  return it == tokens_.end() ? nullptr : &it->second;
}

EnrolmentDesk::Outcome EnrolmentDesk::redeem(const EnrolRequest& r, std::span<const std::uint8_t> payload,
                                             std::int64_t now_ms, std::int64_t grace_ms) {
  Outcome out;
  out.reply.agent_id = r.agent_id;
  out.reply.post_id = r.post_id;
  out.reply.token_id = r.token_id;
  out.reply.at_ms = now_ms;
  const std::string who = r.post_id + "/" + r.agent_id;
  auto refuse = [&](std::string why) {
    out.reply.reason = std::move(why);
    return out;
  };
  if (r.key_id != key_id_of(r.public_key) || !verify_payload(payload, r.signature_offset, r.public_key))
    return refuse("the request is not signed by the key it enrols");
  if (r.rotation()) return rotate(r, now_ms, grace_ms, std::move(out));
  auto it = tokens_.find(r.token_id);
  if (it == tokens_.end()) return refuse("unknown enrolment token '" + r.token_id + "'");
  IssuedToken& t = it->second;
  if (t.post != r.post_id || t.agent != r.agent_id)
    return refuse("the token was issued for " + t.post + "/" + t.agent + ", not " + who);
  auto expected = enrolment_proof(secret_of(t.id), r.post_id, r.agent_id, r.public_key);
  if (CRYPTO_memcmp(expected.data(), r.proof.data(), expected.size()) != 0)
    return refuse("the proof does not match the token (a wrong token, or the key was changed on the way)");
  const AgentKey* current = keys_.in_force(r.post_id, r.agent_id);
  if (t.used_at_ms != 0) {
    // The same agent asking again with the same key (its first answer was lost): the same answer.
    if (t.used_by_key == r.key_id && current && current->key_id == r.key_id) {
      out.reply.accepted = true;
      out.reply.agent_key_id = r.key_id;
      return out;
    }
    return refuse("the token was used already");
  }
  if (now_ms > t.expires_at_ms) return refuse("the token expired");
  if (current)
    return refuse("agent " + who + " is enrolled already with key " + current->key_id +
                  "; an operator must revoke that key first (POST /api/v1/agent-keys/" + r.post_id + "/" + r.agent_id +
                  "/revoke)");
  AgentKey k = requested_key(r, now_ms);
  k.token_id = t.id;
  keys_.add(std::move(k));
  t.used_at_ms = now_ms;
  t.used_by_key = r.key_id;
  out.reply.accepted = true;
  out.reply.agent_key_id = r.key_id;
  out.changed = true;
  out.token = &t;
  out.key = keys_.in_force(r.post_id, r.agent_id);
  return out;
}

EnrolmentDesk::Outcome EnrolmentDesk::rotate(const EnrolRequest& r, std::int64_t now_ms, std::int64_t grace_ms,
                                             Outcome out) {
  const std::string who = r.post_id + "/" + r.agent_id;
  auto refuse = [&](std::string why) {
    out.reply.reason = std::move(why);
    return out;
  };
  const AgentKey* current = keys_.in_force(r.post_id, r.agent_id);
  if (current && current->key_id == r.key_id && current->rotated_from == r.endorsed_by) {
    // The same rotation again (its answer was lost, or the agent finishes an interrupted one).
    out.reply.accepted = true;
    out.reply.agent_key_id = r.key_id;
    return out;
  }
  if (!current) return refuse("agent " + who + " has no key in force to rotate from; enrol it with a token");
  if (current->key_id != r.endorsed_by)
    return refuse("the rotation is endorsed by key " + r.endorsed_by + ", but agent " + who + "'s key in force is " +
                  current->key_id);
  if (!rotation_endorsed(current->key, r.post_id, r.agent_id, r.public_key, *r.endorsement))
    return refuse("the endorsement does not verify with key " + current->key_id +
                  " (forged, or the new key was "
                  "changed on the way)");
  if (keys_.find(r.post_id, r.agent_id, r.key_id))
    return refuse("key " + r.key_id + " was this agent's before; a rotation needs a new key");
  AgentKey k = requested_key(r, now_ms);
  k.rotated_from = current->key_id;
  const std::string old_id = current->key_id;
  if (!keys_.rotate(std::move(k), now_ms + grace_ms)) return refuse("agent " + who + " has no key in force");
  out.reply.accepted = true;
  out.reply.agent_key_id = r.key_id;
  out.changed = true;
  out.key = keys_.in_force(r.post_id, r.agent_id);
  out.retired = keys_.find(r.post_id, r.agent_id, old_id);
  return out;
}

std::vector<const IssuedToken*> EnrolmentDesk::tokens() const {
  std::vector<const IssuedToken*> out;
  for (const auto& [id, t] : tokens_) out.push_back(&t);
  return out;
}

}  // namespace postwatch::aggregator
