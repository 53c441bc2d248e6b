// One spool record on disk: [u32 body length][u32 CRC32C of body][body], host
// byte order (a spool never leaves its device). The body holds one event; in an encrypted
// segment it is sealed (spool_segment.hpp), and the length and CRC are of the sealed body.
#pragma once

#include "postwatch/crc32c.hpp"
#include "postwatch/event.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace postwatch::agent {

inline constexpr std::size_t kRecordHeaderBytes = 8;
inline constexpr std::size_t kMaxRecordBodyBytes = 8192;
inline constexpr std::string_view kSegmentMagic = "PWSPOOL1";

using postwatch::crc32c;

// Appends header + body for `e` to `out`.
void encode_record(const IndicatorEvent& e, std::string& out);

// Ok; NeedMore: `data` ends inside the record (a torn tail at the end of a file); Corrupt: bad
// length, CRC or body (damage); Unauthentic: CRC intact but the AEAD tag fails (tampering).
enum class RecordStatus { Ok, NeedMore, Corrupt, Unauthentic };
// Decodes the record at the start of `data`; on Ok sets `consumed`.
RecordStatus decode_record(std::string_view data, IndicatorEvent& e, std::size_t& consumed);

// The body alone: appended to `out` / parsed from exactly `body` (Ok or Corrupt).
void encode_body(const IndicatorEvent& e, std::string& out);
RecordStatus decode_body(std::string_view body, IndicatorEvent& e);
// Appends [length][CRC32C][body] to `out`, where `body` is whatever follows the header.
void frame_record(std::string_view body, std::string& out);

}  // namespace postwatch::agent
