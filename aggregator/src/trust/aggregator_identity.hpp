// The aggregator's own keys (docs/security.md, "Key custody"), in --keys-dir: its Ed25519
// signing key (aggregator.key), which signs every confirmation, resend request and enrolment
// answer, and the secret enrolment tokens are derived from (enrolment.secret). Both are made
// on first start, readable by the aggregator's user only.
#pragma once

#include "postwatch/signing.hpp"

#include <filesystem>
#include <string>
#include <vector>

namespace postwatch::aggregator {

struct AggregatorIdentity {
  SigningKey key;
  std::vector<std::uint8_t> enrolment_secret;
  std::vector<std::string> created;  // files made by this start, for the log

  // Throws std::runtime_error naming the file and the fix.
  static AggregatorIdentity load_or_create(const std::filesystem::path& dir);
};

}  // namespace postwatch::aggregator
