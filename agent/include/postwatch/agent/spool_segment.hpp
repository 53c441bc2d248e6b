// A spool segment file's format: its header and how its records are written and read.
// - PWSPOOL1: the 8-byte magic, then plaintext records (encryption off; agents before it).
// - PWSPOOL2: a 40-byte header — magic, AEAD id (u8), 3 zero bytes, key id (8), segment id (16
//   random bytes), CRC32C of the 36 bytes before it — then records whose bodies are sealed
//   (spool_cipher.hpp). Record framing as in spool_record.hpp. docs/agent.md, "Spool format".
#pragma once

#include "postwatch/agent/spool_cipher.hpp"
#include "postwatch/agent/spool_key.hpp"
#include "postwatch/agent/spool_record.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace postwatch::agent {

inline constexpr std::string_view kSealedSegmentMagic = "PWSPOOL2";
inline constexpr std::size_t kSealedHeaderBytes = 40;
inline constexpr std::size_t kSegmentIdBytes = 16;

// Ok; NoHeader: too short or no known magic (a file cut while its header was written, or not a
// segment); Damaged: a PWSPOOL2 header whose checksum fails or that names an unknown AEAD.
enum class HeaderStatus { Ok, NoHeader, Damaged };

class SegmentFormat {
 public:
  // A new segment's format: sealed under `key` with `aead` and a fresh random segment id when
  // `key` is set, plaintext (PWSPOOL1) otherwise.
  static std::shared_ptr<SegmentFormat> create(std::shared_ptr<const SpoolKey> key, SpoolAead aead = kDefaultSpoolAead);
  // The format named by the header at the start of `data` (a sealed one without a key yet).
  static HeaderStatus parse(std::string_view data, std::shared_ptr<SegmentFormat>& out);

  bool sealed() const { return sealed_; }
  const std::string& header() const { return header_; }
  std::size_t header_bytes() const { return header_.size(); }
  std::string key_id_hex() const;  // sealed segments: the key they were written under
  SpoolAead aead() const { return aead_; }
  // Sealed segments: readable with `key`? false when the header names another key id.
  bool use_key(const SpoolKey& key);
  bool readable() const { return !sealed_ || cipher_ != nullptr; }

  // Appends the framed record of `body` (encode_body) written at file offset `offset`.
  void encode(std::string_view body, std::uint64_t offset, std::string& out);
  // Bytes on disk of a record whose body has `body_bytes` bytes.
  std::size_t record_bytes(std::size_t body_bytes) const;
  // Decodes the record at the start of `data`, which lies at file offset `offset`.
  RecordStatus decode(std::string_view data, std::uint64_t offset, IndicatorEvent& e, std::size_t& consumed);

 private:
  bool sealed_ = false;
  SpoolAead aead_ = kDefaultSpoolAead;
  std::string header_;
  std::unique_ptr<SpoolCipher> cipher_;
  std::string plain_;  // scratch for opened bodies
};

}  // namespace postwatch::agent
