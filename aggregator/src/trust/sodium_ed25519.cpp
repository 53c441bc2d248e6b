#include "trust/sodium_ed25519.hpp"

#include <sodium.h>

#include <stdexcept>

namespace postwatch::aggregator {

namespace {
// sodium_init() picks the CPU's fastest code; it is safe to call from several threads, once
// is enough.
bool sodium_ready() {
  static const bool ready = [] {
    if (sodium_init() < 0) throw std::runtime_error("libsodium could not be initialised");
    return true;
  }();
  return ready;
}
}  // namespace

bool sodium_ed25519_verify(const PublicKey& key, std::span<const std::uint8_t> message,
                           std::span<const std::uint8_t> signature) {
  static_assert(crypto_sign_PUBLICKEYBYTES == sizeof(PublicKey) && crypto_sign_BYTES == kSignatureBytes);
  return sodium_ready() && signature.size() == crypto_sign_BYTES &&
         crypto_sign_verify_detached(signature.data(), message.data(), message.size(), key.data()) == 0;
}

}  // namespace postwatch::aggregator
