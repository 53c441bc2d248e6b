// CRC-32C (Castagnoli): the checksum of the agent's spool records and of the
// aggregator's stored event batches.
#pragma once

#include <cstddef>
#include <cstdint>

namespace postwatch {

std::uint32_t crc32c(const void* data, std::size_t n);

}  // namespace postwatch
