// The agent's signing key on a PKCS#11 token (docs/security.md, "Key custody"): a TPM, a smart
// card or an HSM the board has, reached through its vendor's PKCS#11 module (SoftHSM in the
// tests). The key pair is made on the token, marked sensitive and not extractable, so the
// private half never leaves it; the agent's key file then holds only the key's RFC 7512 URI
// ("pkcs11:token=postwatch;object=postwatch-agent-1f2e3d4c;type=private").
//
// The module is loaded with dlopen and C_GetFunctionList, as PKCS#11 prescribes, once per
// process and module. Signing takes one session's lock: the publisher thread signs, and a
// concurrent key check or rotation waits for it, never for disk I/O.
#pragma once

#include "postwatch/signing.hpp"

#include <filesystem>
#include <string>
#include <string_view>

namespace postwatch::agent {

struct Pkcs11Config {
  std::filesystem::path module;    // the token vendor's PKCS#11 library (.so)
  std::string token;               // the token's label
  std::filesystem::path pin_file;  // the user PIN, 0600 like every secret the agent reads
  bool enabled() const { return !module.empty(); }
};

// True when `text` (a key file's contents) is a PKCS#11 URI rather than a PEM key.
bool is_pkcs11_reference(std::string_view text);

// Errors throw std::runtime_error with one line for the operator (the module, the token, what
// the token said); never the PIN.
class Pkcs11Keys {
 public:
  explicit Pkcs11Keys(Pkcs11Config config) : config_(std::move(config)) {}

  // Makes an Ed25519 key pair on the token, labelled "postwatch-agent-<8 hex digits>".
  SigningKey generate() const;
  // The key a URI from generate() names; checks it signs what its public half verifies.
  SigningKey load(std::string_view uri) const;
  // Destroys both halves of the key `uri` names (a rotation's old key). False when the token
  // has no such key.
  bool destroy(std::string_view uri) const;

 private:
  Pkcs11Config config_;
};

}  // namespace postwatch::agent
