// One spool record on disk: [u32 body length][u32 CRC32C of body][body], host
// byte order (a spool never leaves its device). The body holds one event.
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

enum class RecordStatus { Ok, NeedMore, Corrupt };
// Decodes the record at the start of `data`; on Ok sets `consumed`.
RecordStatus decode_record(std::string_view data, IndicatorEvent& e, std::size_t& consumed);

}  // namespace postwatch::agent
