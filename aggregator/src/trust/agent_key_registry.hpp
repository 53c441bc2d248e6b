// Which Ed25519 key each agent signs with (docs/security.md): filled by enrolment, moved on by
// rotation (the old key stays valid for a grace period), emptied of a key by revocation, and
// asked for every batch, birth, heartbeat and death before anything else reads them. Pure: the
// caller persists changes (to_json / from_json) and keeps time.
#pragma once

#include "postwatch/signing.hpp"
#include "postwatch/verify_key.hpp"

#include <memory>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace postwatch::aggregator {

struct AgentKey {
  std::string post, agent, key_id;
  PublicKey key{};
  std::int64_t enrolled_at_ms = 0;
  std::int64_t revoked_at_ms = 0;  // 0: not revoked
  std::string token_id;            // the enrolment token it came with (empty for a rotation)
  // A rotated key: valid until then, refused as revoked from then on. 0: not rotated.
  std::int64_t retires_at_ms = 0;
  std::string rotated_from{};  // the key id that endorsed it (empty for an enrolment)
  // Made by AgentKeyRegistry::add, so no message pays for OpenSSL's key object.
  std::shared_ptr<const VerifyKey> verifier{};
  bool revoked() const { return revoked_at_ms != 0; }
  bool retiring() const { return retires_at_ms != 0; }
  bool in_force() const { return !revoked() && !retiring(); }
  bool valid_at(std::int64_t now_ms) const { return !revoked() && (!retiring() || now_ms < retires_at_ms); }
};
nlohmann::json to_json(const AgentKey& k);
// False when `j` is not one (a damaged store row).
bool from_json(const nlohmann::json& j, AgentKey& out);
// `from` is the same key (same id) as another instance of a cluster saw it: takes up its
// revocation or rotation, the earlier one when both have one. True when `into` changed.
bool merge_key(AgentKey& into, const AgentKey& from);

enum class SignatureVerdict : std::uint8_t {
  Signed,    // signed by a key in force for this agent
  Unsigned,  // no signature, from an agent with no key in force: accepted unless required
  // Refused:
  RefusedUnsigned,  // no signature, but the agent is enrolled (or signatures are required)
  BadSignature,     // signed with a key of this agent's that does not verify: altered or forged
  UnknownKey,       // signed with a key this agent never enrolled
  RevokedKey,       // signed with a key an operator revoked, or one rotated out whose grace ended
};
inline constexpr std::size_t kSignatureRefusals = 4;  // the refused verdicts, in order
std::string_view to_string(SignatureVerdict v);       // "signed", ..., "unsigned_refused", "bad_signature", ...
inline bool refused(SignatureVerdict v) { return v >= SignatureVerdict::RefusedUnsigned; }
inline std::size_t refusal_index(SignatureVerdict v) {
  return static_cast<std::size_t>(v) - static_cast<std::size_t>(SignatureVerdict::RefusedUnsigned);
}
inline SignatureVerdict refusal_at(std::size_t index) {
  return static_cast<SignatureVerdict>(index + static_cast<std::size_t>(SignatureVerdict::RefusedUnsigned));
}

class AgentKeyRegistry {
 public:
  // `require_signatures`: unsigned messages are refused from every agent, enrolled or not.
  explicit AgentKeyRegistry(bool require_signatures = false) : require_signatures_(require_signatures) {}

  // `verified`: the key a SignaturePrecheck verified the payload with on another thread. When
  // it is still this key's verifier, the signature is not verified again; whether the key is
  // valid now is decided here all the same.
  SignatureVerdict check(std::string_view post, std::string_view agent, std::string_view key_id,
                         std::span<const std::uint8_t> payload, std::size_t signature_offset, std::int64_t now_ms,
                         const VerifyKey* verified = nullptr) const;

  // The key in force for the agent (not revoked, not rotated out), or null.
  const AgentKey* in_force(std::string_view post, std::string_view agent) const;
  const AgentKey* find(std::string_view post, std::string_view agent, std::string_view key_id) const;
  // Adds an enrolled key (or one loaded from the store); the agent's earlier key in force, if
  // any, must have been revoked first (the caller checks: EnrolmentDesk).
  void add(AgentKey key);
  // Puts `next` in force for its agent; the key in force until now stays valid until
  // `retires_at_ms`. The caller checked the endorsement (EnrolmentDesk). False when the agent has
  // no key in force.
  bool rotate(AgentKey next, std::int64_t retires_at_ms);
  // Revokes every key of the agent still valid (the key in force and one being rotated out) at
  // `now_ms`; the key that was in force, or null when it had none.
  const AgentKey* revoke(std::string_view post, std::string_view agent, std::int64_t now_ms);

  // A key as another instance of a cluster knows it (docs/security.md, "Clusters"): added when
  // new, merged (merge_key) when known. True when something changed.
  bool merge(const AgentKey& key);
  // The agent's keys, copied (without their verifiers), in the order they came.
  std::vector<AgentKey> keys_of_agent(std::string_view post, std::string_view agent) const;

  bool require_signatures() const { return require_signatures_; }
  // Agents with a key in force; a count kept by add, rotate and revoke, since the stats and
  // /metrics ask on every request.
  std::size_t enrolled_agents() const { return enrolled_; }
  // Moves on with every change (SignaturePrecheck rebuilds its copy when it does).
  std::uint64_t version() const { return version_; }
  // Every key, by post, agent and enrolment time.
  std::vector<const AgentKey*> all() const;

 private:
  using Keys = std::vector<AgentKey>;
  using Agents = std::map<std::string, Keys, std::less<>>;
  const Keys* keys_of(std::string_view post, std::string_view agent) const;
  static bool has_key_in_force(const Keys& keys);
  static void put(Keys& keys, AgentKey key);
  void recount(bool before, const Keys& keys);  // after a change to one agent's keys
  std::map<std::string, Agents, std::less<>> by_post_;
  bool require_signatures_;
  std::size_t enrolled_ = 0;
  std::uint64_t version_ = 0;
};

}  // namespace postwatch::aggregator
