// The aggregator's own keys (docs/security.md, "Key custody"), in --keys-dir: its Ed25519
// signing key (aggregator.key), which signs every confirmation, resend request and enrolment
// answer, and the secret enrolment tokens are derived from (enrolment.secret). Both are made
// on first start, readable by the aggregator's user only.
//
// Rotating the signing key (docs/security.md, "The aggregator's key") keeps two more files
// there: aggregator.next.key, the prepared successor every confirmation announces, and
// retired.pub, the public halves of keys signed with before (newest last), which
// confirmations name so agents stop trusting them. A switch writes retired.pub first, then
// renames the next key over aggregator.key: a crash between the two leaves the old key in
// force and the next one prepared, and the load drops a "retired" key that is still in use.
#pragma once

#include "postwatch/signing.hpp"

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace postwatch::aggregator {

struct AggregatorIdentity {
  SigningKey key;
  std::vector<std::uint8_t> enrolment_secret;
  std::vector<std::string> created;  // files made by this start, for the log
  std::filesystem::path dir;
  std::optional<SigningKey> next;  // prepared, not yet signing
  std::vector<PublicKey> retired;  // newest last, at most kMaxRetired
  static constexpr std::size_t kMaxRetired = 8;

  // Throws std::runtime_error naming the file and the fix.
  static AggregatorIdentity load_or_create(const std::filesystem::path& dir);

  // Makes the next key (aggregator.next.key, 0600) unless one is prepared. Throws
  // std::runtime_error when it cannot be written.
  const SigningKey& prepare_next();
  // The prepared key signs from now on; the key in force joins `retired`. Throws
  // std::logic_error when none is prepared, std::runtime_error when a file cannot be written
  // (then nothing changed, in memory or, after a crash, on disk).
  void switch_to_next();
  std::vector<std::string> retired_key_ids() const;
  // Where prepare_next() writes the next key.
  std::filesystem::path next_key_file() const;
};

}  // namespace postwatch::aggregator
