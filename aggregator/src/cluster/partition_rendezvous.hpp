// Which instance holds which event partition, by rendezvous (highest random weight)
// hashing over the live members: every instance computes the same answer from the same
// member list, and a member joining or leaving moves only the partitions it wins or held
// (docs/scale-out.md). The partition lease enforces the answer.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace postwatch::aggregator {

std::uint64_t rendezvous_weight(std::string_view instance, std::string_view key);

// The partitions (0..count-1) that `self` wins by rendezvous among `members` (names).
std::vector<std::uint32_t> partitions_won(const std::vector<std::string>& members, std::string_view self,
                                          std::uint32_t count);

}  // namespace postwatch::aggregator
