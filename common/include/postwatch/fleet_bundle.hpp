// Fleet bundles (docs/fleet.md): a versioned document, signed with the fleet's Ed25519 key,
// that changes what agents run without a visit to the board: an overlay on the agent's
// config, a catalogue, or both. Shared by the agent (verifies, applies), `postwatch-fleet`
// (signs) and the aggregator (publishes rollouts).
#pragma once

#include "postwatch/event.hpp"
#include "postwatch/signing.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace postwatch {

inline constexpr std::string_view kBundleFormat = "postwatch-bundle/1";
// A signed bundle larger than this is refused before it is parsed (a catalogue is ~75 KB); so
// is JSON nested more than 64 levels deep.
inline constexpr std::size_t kMaxBundleBytes = std::size_t{4} * 1024 * 1024;

// Who a bundle is for. An agent takes a bundle addressed to the fleet, its post's region, its
// post, or itself.
struct BundleTarget {
  enum class Scope { Fleet, Region, Post, Agent };
  Scope scope = Scope::Fleet;
  std::string region;  // Scope::Region
  std::string post;    // Scope::Post and Scope::Agent
  std::string agent;   // Scope::Agent

  // Whether an agent at `agent_post` in `agent_region` with id `agent_id` takes it. An empty
  // id in the target addresses nobody.
  bool addresses(std::string_view agent_region, std::string_view agent_post, std::string_view agent_id) const;
  // "fleet", "region africa", "post bamako", "agent bamako/board-1"
  std::string describe() const;
};
std::string_view to_string(BundleTarget::Scope scope);

struct FleetBundle {
  std::uint64_t version = 0;  // > 0; one counter for the whole fleet: the newest bundle wins
  std::int64_t issued_at_ms = 0;
  BundleTarget target;
  // A JSON merge patch (RFC 7386) onto the agent's own config file, as JSON text; empty: the
  // bundle leaves the config as it is. Which fields it may touch is the agent's rule
  // (agent/bundle_overlay.hpp).
  std::string config;
  // A whole catalogue, as JSON text; empty: the bundle leaves the catalogue as it is.
  std::string catalogue;
  // After switching, the agent must show health within this (connected, publishing, inputs
  // running) or it goes back to what it ran before.
  std::uint32_t health_deadline_s = 120;
  std::string note;  // free text for operators ("raise the heartbeat for the summit")
};

// Why a signed bundle was refused; each is counted by the agent (docs/fleet.md, "Refusals").
enum class BundleRefusal {
  None,
  Malformed,     // not a bundle: bad JSON, missing or wrong-typed fields, oversized
  Unsigned,      // no signature
  UnknownKey,    // signed by a key the agent does not hold
  BadSignature,  // the signature does not match the document
};
std::string_view to_string(BundleRefusal refusal);
// "none", "applied", "refused", "rolled_back", "on_trial": the names of an agent's last bundle
// outcome in the API, its status file and docs/fleet.md.
std::string_view to_string(FleetReport::Outcome outcome);

// The signed envelope, as published and as written to disk:
//   {"format": "postwatch-bundle/1", "document": "<the bundle as JSON text>",
//    "key_id": "<16 hex>", "signature": "<128 hex>"}
// The signature covers "postwatch-bundle/1\n" followed by the document's bytes exactly, so
// nothing depends on how a JSON library orders or spaces keys.
// Throws std::invalid_argument (one line, the field named) for a bundle open_bundle would
// refuse: version 0, a negative issued_at_ms, health_deadline_s outside 10..86400, a target
// without the ids its scope needs or with ids its scope does not use, an id with '/', '+', '#'
// or whitespace, neither config nor catalogue, or either of them not a JSON object.
std::string sign_bundle(const FleetBundle& bundle, const SigningKey& key);

struct OpenedBundle {
  BundleRefusal refusal = BundleRefusal::None;
  std::string error;   // one line for the log, naming what is wrong (never key material)
  FleetBundle bundle;  // empty unless ok()
  std::string key_id;  // the signing key's id once it is one of `keys` (also on BadSignature and a
                       // Malformed document)
  bool ok() const { return refusal == BundleRefusal::None; }
};
// Checks the envelope (size, format, fields: Malformed), its signature (Unsigned, UnknownKey,
// BadSignature) against `keys` first, then parses the document: every field typed and in range,
// a target that names what its scope needs, at least one of config and catalogue, each a JSON
// object, no unknown field (Malformed). config and catalogue come back as compact JSON text.
OpenedBundle open_bundle(std::string_view signed_text, const std::vector<PublicKey>& keys);

// The document alone, as compact JSON text (what the signature covers after the format line).
// Throws std::invalid_argument when config or catalogue is not a JSON object; checks nothing else.
std::string bundle_document(const FleetBundle& bundle);

// Where a bundle for `target` is published, retained (docs/fleet.md, "Topics"):
//   postwatch/v1/fleet/bundle/all
//   postwatch/v1/fleet/bundle/region/<region>
//   postwatch/v1/fleet/bundle/post/<post>
//   postwatch/v1/fleet/bundle/agent/<post>/<agent>
std::string bundle_topic(const BundleTarget& target);
// The four topics an agent subscribes to, fleet first.
std::vector<std::string> bundle_topics_for(std::string_view region, std::string_view post, std::string_view agent);

// Public keys, hex, one per line ('#' comments, blank lines), as `postwatch-fleet keygen` writes
// them. Throws std::runtime_error naming the file and the line, or the file when it holds no key.
std::vector<PublicKey> load_fleet_keys(const std::string& file);

}  // namespace postwatch
