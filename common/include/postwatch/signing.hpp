// Ed25519 identities (docs/security.md): each agent signs what it publishes, the aggregator
// signs what it tells the agents. OpenSSL 3's EVP, which both already link for TLS.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace postwatch {

using PublicKey = std::array<std::uint8_t, 32>;
inline constexpr std::size_t kSignatureBytes = 64;
using Signature = std::array<std::uint8_t, kSignatureBytes>;

// A key's short name on the wire and in the API: the first 8 bytes of SHA-256 of the
// public key, in hex (16 characters).
std::string key_id_of(const PublicKey& key);

std::string to_hex(std::span<const std::uint8_t> bytes);
// Lower- or upper-case hex of exactly `out.size()` bytes; false otherwise.
bool from_hex(std::string_view text, std::span<std::uint8_t> out);
std::optional<PublicKey> public_key_from_hex(std::string_view text);

class SigningKey {
 public:
  // A private key this process never holds: a PKCS#11 token's (agent/pkcs11_key.hpp).
  class External {
   public:
    virtual ~External() = default;
    virtual Signature sign(std::span<const std::uint8_t> message) const = 0;
    // What save() writes in place of a private key: the reference it is found by again (an
    // RFC 7512 "pkcs11:" URI).
    virtual std::string reference() const = 0;
  };
  static SigningKey from_external(std::shared_ptr<const External> key, const PublicKey& public_key);

  static SigningKey generate();
  // The key whose 32-byte private seed is `seed` (RFC 8032): fixed keys for fuzzing and tests.
  static SigningKey from_seed(const std::array<std::uint8_t, 32>& seed);
  // Reads a PEM (PKCS#8) Ed25519 private key; refuses a file group or others can read, or
  // any other key type. Throws std::runtime_error naming the file (never its contents).
  static SigningKey load(const std::filesystem::path& file);
  // Loads `file`, or generates a key and writes it there (0600, never over an existing file).
  // `created` says which.
  static SigningKey load_or_create(const std::filesystem::path& file, bool& created);
  // Writes the private key as PEM (an external key: its reference), mode 0600, refusing to
  // replace an existing file.
  void save(const std::filesystem::path& file) const;
  // The key's reference when it is external, else empty.
  std::string external_reference() const { return external_ ? external_->reference() : std::string(); }

  const PublicKey& public_key() const { return public_; }
  const std::string& key_id() const { return key_id_; }
  Signature sign(std::span<const std::uint8_t> message) const;

 private:
  struct Pkey;
  explicit SigningKey(std::shared_ptr<Pkey> key);
  explicit SigningKey(const PublicKey& public_key);
  std::shared_ptr<Pkey> key_;                 // OpenSSL's, or
  std::shared_ptr<const External> external_;  // held elsewhere
  PublicKey public_{};
  std::string key_id_;
};

bool verify_signature(const PublicKey& key, std::span<const std::uint8_t> message,
                      std::span<const std::uint8_t> signature);

// A signed FlatBuffers payload carries its signature in a 64-byte vector inside the buffer;
// the signature covers every byte of the payload with those 64 bytes zeroed (so it covers
// the key id, the field layout and where the signature sits). The encoder writes zeros,
// then sign_payload() fills them in.
void sign_payload(std::vector<std::uint8_t>& payload, std::size_t signature_offset, const SigningKey& key);
bool verify_payload(std::span<const std::uint8_t> payload, std::size_t signature_offset, const PublicKey& key);

// HMAC-SHA256, for enrolment tokens (docs/security.md, "Enrolment").
std::array<std::uint8_t, 32> hmac_sha256(std::span<const std::uint8_t> key, std::span<const std::uint8_t> message);
// `n` bytes from OpenSSL's CSPRNG; throws if it fails.
std::vector<std::uint8_t> random_bytes(std::size_t n);

}  // namespace postwatch
