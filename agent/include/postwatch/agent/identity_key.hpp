// Where the agent's private key lives (docs/security.md, "Key custody"): identity.key_file holds
// the key as PEM (0600), or, with identity.pkcs11 set, the URI of a key made on the token. Both
// enrolment and rotation write the file; the running agent reads it. Either way the file is
// what a rotation renames, so a crash never leaves half a key in force.
#pragma once

#include "postwatch/agent/agent_config.hpp"
#include "postwatch/signing.hpp"

#include <filesystem>
#include <string>
#include <vector>

namespace postwatch::agent {

// The key `file` holds or names. Throws std::runtime_error naming the file (or the token).
SigningKey load_identity_key(const IdentityConfig& id, const std::filesystem::path& file);
// A new key where `id` says (on the token with identity.pkcs11, else made here), written to
// `file`, or its URI: mode 0600, never over an existing file.
SigningKey create_identity_key(const IdentityConfig& id, const std::filesystem::path& file);
// Loads `file`, or creates it as above; `created` says which.
SigningKey load_or_create_identity_key(const IdentityConfig& id, const std::filesystem::path& file, bool& created);
// Rotation and a key on the token (docs/security.md, "Key custody"): before the new key's file
// replaces the old one, rotate-key lists the old key in <key_file>.retired; whoever next loads
// the key in force (the running agent taking up the new one, or the next start) destroys the
// listed keys on the token, never the key in force. A file key goes with its file: nothing listed.
void list_retired_key(const IdentityConfig& id, const SigningKey& old);
// What was destroyed or could not be, one line each for the log; the list goes once all are gone.
std::vector<std::string> destroy_retired_keys(const IdentityConfig& id, const SigningKey& in_force);
std::filesystem::path retired_keys_file(const IdentityConfig& id);
}  // namespace postwatch::agent
