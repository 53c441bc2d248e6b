// The trust registry as the instances of a cluster share it (docs/security.md, "Clusters"): one
// entry per agent (all its keys) and one per enrolment token, each sealed with the cluster's
// aggregator key, which every instance holds and the broker does not. An instance uses an entry
// only once it verified the seal, so a broker operator who writes to the bucket changes nothing.
//
// Merging is monotone: a key once revoked or rotated out stays so, and no key is ever dropped,
// so an old entry written again (a replay) changes nothing either. What must not be merged, a
// second key in force or a token used twice, is decided on one agent's entry read by revision
// and written by compare-and-set (decide_on_record). Pure: the NATS side is SharedTrust.
#pragma once

#include "postwatch/enrolment.hpp"
#include "trust/agent_key_registry.hpp"
#include "trust/enrolment_desk.hpp"

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace postwatch::aggregator {

// The entries' keys in the bucket (post, agent and token ids are [a-z0-9-], hex).
std::string agent_entry_key(std::string_view post, std::string_view agent);
std::string token_entry_key(std::string_view token_id);
std::string signer_entry_key(std::string_view instance);

// An entry's value: {"body", "key_id", "signature"}, the signature by `key` over the group, the
// entry's key and the body, so an entry cannot be moved to another key or another group.
std::string seal_entry(const SigningKey& key, std::string_view group, std::string_view entry_key,
                       const std::string& body);
struct OpenedEntry {
  std::string body;
  std::string key_id;  // the key id the entry names (whether or not it verified)
  bool verified = false;
  std::string why;  // when not verified
};
// Verified only when signed by `key`.
OpenedEntry open_entry(const PublicKey& key, std::string_view group, std::string_view entry_key,
                       std::string_view value);

std::string agent_record_body(const std::vector<AgentKey>& keys);
// False when the body is not an agent record (then `out` is unspecified).
bool parse_agent_record(const std::string& body, std::vector<AgentKey>& out);

// Every key of both lists, each merged (merge_key), by enrolment time.
std::vector<AgentKey> merge_keys(std::vector<AgentKey> into, const std::vector<AgentKey>& from);
bool same_keys(const std::vector<AgentKey>& a, const std::vector<AgentKey>& b);

// One enrolment or rotation decided on one agent's keys alone, as EnrolmentDesk decides it on
// a single instance. A token's use is read from the keys (a key names the token it came with),
// so checking the one agent entry checks the token too: a token is bound to one agent.
struct AgentDecision {
  EnrolReply reply;
  bool changed = false;        // `keys` differ from those given: write them (by revision)
  std::vector<AgentKey> keys;  // the agent's keys after
};
AgentDecision decide_on_record(const std::vector<std::uint8_t>& enrolment_secret, const SigningKey& aggregator_key,
                               const std::vector<AgentKey>& keys, std::optional<IssuedToken> token,
                               const EnrolRequest& request, std::span<const std::uint8_t> payload, std::int64_t now_ms,
                               std::int64_t grace_ms);

}  // namespace postwatch::aggregator
