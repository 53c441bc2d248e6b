// The two fields every signed FlatBuffers message ends with (docs/wire-format.md,
// "Signatures"): `key_id` and a 64-byte `signature` covering the whole buffer with those bytes
// zeroed. Shared by the codecs of wire_codec.cpp and enrolment.cpp; internal to common/.
#pragma once

#include "postwatch/signing.hpp"
#include "postwatch/wire_codec.hpp"

#include <flatbuffers/flatbuffers.h>

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace postwatch::signed_fields {

// A signed payload's key id and 64 zero bytes, filled in by finish() once the buffer is done.
struct Fields {
  flatbuffers::Offset<flatbuffers::String> key_id;
  flatbuffers::Offset<flatbuffers::Vector<std::uint8_t>> signature;
};
inline Fields add(flatbuffers::FlatBufferBuilder& fbb, const SigningKey* signer) {
  if (!signer) return {};
  static const std::uint8_t zeros[kSignatureBytes] = {};
  auto id = fbb.CreateString(signer->key_id());
  return {id, fbb.CreateVector(zeros, kSignatureBytes)};
}

// The finished buffer, signed when `signer` is given.
template <typename Table>
std::vector<std::uint8_t> finish(flatbuffers::FlatBufferBuilder& fbb, const Table* root, const SigningKey* signer) {
  std::vector<std::uint8_t> out(fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize());
  if (signer) {
    auto offset = static_cast<std::size_t>(root->signature()->data() - fbb.GetBufferPointer());
    sign_payload(out, offset, *signer);
  }
  return out;
}

// Where a verified payload's signature sits (offset 0: unsigned). False for a malformed pair:
// one field without the other, a signature of another length, an empty or overlong key id.
template <typename Table>
bool locate(const Table* t, std::span<const std::uint8_t> payload, std::string_view& key_id, std::size_t& offset) {
  const auto* id = t->key_id();
  const auto* sig = t->signature();
  key_id = id ? std::string_view(id->data(), id->size()) : std::string_view{};
  offset = 0;
  if (!id && !sig) return true;
  if (!id || !sig || sig->size() != kSignatureBytes || id->size() == 0 || id->size() > WireLimits::max_id_bytes)
    return false;
  offset = static_cast<std::size_t>(sig->data() - payload.data());
  return true;
}

}  // namespace postwatch::signed_fields
