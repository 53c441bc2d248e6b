// An Ed25519 public key ready to verify with: OpenSSL's key object is made once, not per
// message (making it costs about as much as half a verification here; docs/performance.md,
// "Signatures").
#pragma once

#include "postwatch/signing.hpp"

#include <memory>
#include <span>

namespace postwatch {

class VerifyKey {
 public:
  // Throws std::runtime_error when OpenSSL refuses the key.
  explicit VerifyKey(const PublicKey& key);
  const PublicKey& key() const { return key_; }
  bool verify(std::span<const std::uint8_t> message, std::span<const std::uint8_t> signature) const;
  // As verify_payload() in signing.hpp, with this key.
  bool verify_payload(std::span<const std::uint8_t> payload, std::size_t signature_offset) const;

 private:
  struct Pkey;
  std::shared_ptr<const Pkey> pkey_;
  PublicKey key_;
};

}  // namespace postwatch
