// What fuzz_signed_payload and its seed writer share: the fixed key the fuzzer's registry
// knows for bamako/a1, so seeds signed with it get past the signature into the whole path.
#pragma once

#include "postwatch/signing.hpp"

namespace postwatch::fuzz {

inline const SigningKey& fuzz_agent_key() {
  static const SigningKey key = SigningKey::from_seed({1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                                       17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32});
  return key;
}
inline const SigningKey& fuzz_aggregator_key() {
  static const SigningKey key = SigningKey::from_seed({32, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17,
                                                       16, 15, 14, 13, 12, 11, 10, 9,  8,  7,  6,  5,  4,  3,  2,  1});
  return key;
}

}  // namespace postwatch::fuzz
