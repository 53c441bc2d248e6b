// Seals and opens the records of one encrypted spool segment with an AEAD (OpenSSL 3 EVP):
// - the key is derived from the spool key and the segment's random id (HKDF-SHA256), so every
//   segment has its own key;
// - every record gets a fresh random 96-bit nonce (RAND_bytes), never one derived from its seq:
//   after a crash a seq can be issued again for other content;
// - the associated data is the segment's header and the record's offset in the file, so a record
//   cannot be moved to another place or another spool.
// A sealed record body is nonce (12) || ciphertext || tag (16). docs/agent.md, "Encryption at rest".
#pragma once

#include "postwatch/agent/spool_key.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace postwatch::agent {

// The AEAD of a segment, as its header names it (one byte).
enum class SpoolAead : std::uint8_t { ChaCha20Poly1305 = 1, Aes256Gcm = 2 };

// What new segments are sealed with (docs/agent.md says why).
inline constexpr SpoolAead kDefaultSpoolAead = SpoolAead::ChaCha20Poly1305;

const char* aead_name(SpoolAead aead);
bool is_known_aead(std::uint8_t id);

class SpoolCipher {
 public:
  static constexpr std::size_t kNonceBytes = 12;
  static constexpr std::size_t kTagBytes = 16;
  static constexpr std::size_t kOverhead = kNonceBytes + kTagBytes;

  // `segment_id` salts the derived key; `header` (the segment's header bytes) is bound into
  // every record. Throws std::runtime_error when OpenSSL lacks the algorithm.
  SpoolCipher(const SpoolKey& key, SpoolAead aead, std::string_view segment_id, std::string_view header);
  ~SpoolCipher();
  SpoolCipher(const SpoolCipher&) = delete;
  SpoolCipher& operator=(const SpoolCipher&) = delete;

  // Appends nonce || ciphertext || tag of `plain`, for the record at file offset `offset`.
  void seal(std::string_view plain, std::uint64_t offset, std::string& out);
  // Opens a sealed body into `plain`; false when it does not authenticate (tampered or damaged,
  // or sealed for another offset, segment or key); `plain` is then empty.
  bool open(std::string_view sealed, std::uint64_t offset, std::string& plain);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace postwatch::agent
