// Enrolment tokens and their redemption (docs/security.md, "Enrolment"). A token is bound to
// one post and agent id, expires, and works once. Its secret is derived from the aggregator's
// enrolment secret and the token's id, so the store never holds a usable token. Pure: the
// caller persists what changed and publishes the reply.
#pragma once

#include "postwatch/enrolment.hpp"
#include "trust/agent_key_registry.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

namespace postwatch::aggregator {

struct IssuedToken {
  std::string id, post, agent;
  std::int64_t issued_at_ms = 0, expires_at_ms = 0;
  std::int64_t used_at_ms = 0;  // 0: not yet
  std::string used_by_key;      // the key id it enrolled
};
nlohmann::json to_json(const IssuedToken& t);
bool from_json(const nlohmann::json& j, IssuedToken& out);
// Marks `token` used by the first of `keys` that came with it, unless it is marked already: in
// a cluster an instance may hear of a key before its token or after it (docs/security.md,
// "Clusters").
void mark_used(IssuedToken& token, std::span<const AgentKey> keys);

class EnrolmentDesk {
 public:
  EnrolmentDesk(std::vector<std::uint8_t> enrolment_secret, const SigningKey& aggregator_key, AgentKeyRegistry& keys);

  struct Issued {
    std::string text;  // shown once: the agent's `postwatch-agent enrol --token`
    const IssuedToken* token = nullptr;
  };
  Issued issue(std::string post, std::string agent, std::int64_t ttl_ms, std::int64_t now_ms);
  void load(IssuedToken token);  // from the store at start
  // A token another instance of a cluster issued, or a use it saw (docs/security.md,
  // "Clusters"); a use, once known, stays. The token when something changed, else null.
  const IssuedToken* merge(const IssuedToken& token);
  const IssuedToken* find(std::string_view token_id) const;

  struct Outcome {
    EnrolReply reply;                    // to sign and publish
    bool changed = false;                // a key was added (and a token used): persist them
    const IssuedToken* token = nullptr;  // when an enrolment changed something
    const AgentKey* key = nullptr;       // when changed: the key now in force
    const AgentKey* retired = nullptr;   // when a rotation changed something: the key rotated out
  };
  // `payload` is the request's bytes (its signature is checked against the key it carries).
  // An enrolment (token and proof) or a rotation (endorsed by the key in force), which keeps
  // the old key valid for `grace_ms`.
  Outcome redeem(const EnrolRequest& request, std::span<const std::uint8_t> payload, std::int64_t now_ms,
                 std::int64_t grace_ms = 0);

  std::vector<const IssuedToken*> tokens() const;

 private:
  TokenSecret secret_of(std::string_view token_id) const;
  Outcome rotate(const EnrolRequest& request, std::int64_t now_ms, std::int64_t grace_ms, Outcome out);
  std::vector<std::uint8_t> enrolment_secret_;
  const SigningKey& aggregator_key_;
  AgentKeyRegistry& keys_;
  std::map<std::string, IssuedToken, std::less<>> tokens_;
};

}  // namespace postwatch::aggregator
