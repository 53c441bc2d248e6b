// Ed25519 verification by libsodium for the aggregator's hot path: every enrolled agent's
// batch, birth and heartbeat (docs/performance.md, "Signatures": 48 µs against OpenSSL 3's
// 78 µs here). Agents sign with OpenSSL; the signatures are the same standard Ed25519.
#pragma once

#include "postwatch/verify_key.hpp"

namespace postwatch::aggregator {

// An Ed25519Check (postwatch/verify_key.hpp). libsodium also refuses a public key or an R of
// small order and a non-canonical key, which OpenSSL accepts: no honest agent makes those.
bool sodium_ed25519_verify(const PublicKey& key, std::span<const std::uint8_t> message,
                           std::span<const std::uint8_t> signature);

}  // namespace postwatch::aggregator
