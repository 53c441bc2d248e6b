// An Ed25519 public key ready to verify with: OpenSSL's key object is made once, not per
// message (making it costs about as much as half a verification here; docs/performance.md,
// "Signatures").
#pragma once

#include "postwatch/signing.hpp"

#include <memory>
#include <span>

namespace postwatch {

// A check of one Ed25519 signature by another library than OpenSSL: the aggregator passes
// libsodium's, 1.6 times as fast here (docs/performance.md, "Signatures"); boards keep OpenSSL
// only.
using Ed25519Check = bool (*)(const PublicKey& key, std::span<const std::uint8_t> message,
                              std::span<const std::uint8_t> signature);

class VerifyKey {
 public:
  // Throws std::runtime_error when OpenSSL refuses the key (with `check` too: one rule for
  // which keys can be enrolled). `check`: verifies instead of OpenSSL when not null.
  explicit VerifyKey(const PublicKey& key, Ed25519Check check = nullptr);
  const PublicKey& key() const { return key_; }
  bool verify(std::span<const std::uint8_t> message, std::span<const std::uint8_t> signature) const;
  // As verify_payload() in signing.hpp, with this key.
  bool verify_payload(std::span<const std::uint8_t> payload, std::size_t signature_offset) const;

 private:
  struct Pkey;
  std::shared_ptr<const Pkey> pkey_;
  PublicKey key_;
  Ed25519Check check_ = nullptr;
};

}  // namespace postwatch
