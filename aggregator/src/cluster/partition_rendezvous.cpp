#include "cluster/partition_rendezvous.hpp"

#include <algorithm>

namespace postwatch::aggregator {

namespace {
std::uint64_t fnv1a(std::string_view s, std::uint64_t h = 1469598103934665603ULL) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}
// FNV alone clusters for near-identical keys ("agg-1"/"agg-2"); a finaliser spreads them.
std::uint64_t mix(std::uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}
}  // namespace

std::uint64_t rendezvous_weight(std::string_view instance, std::string_view key) {
  return mix(fnv1a(key, fnv1a("/", fnv1a(instance))));
}

std::vector<std::uint32_t> partitions_won(const std::vector<std::string>& members, std::string_view self,
                                          std::uint32_t count) {
  std::vector<std::uint32_t> won;
  for (std::uint32_t p = 0; p < count; ++p) {
    std::string key = "p" + std::to_string(p);
    const std::string* best = nullptr;
    std::uint64_t best_weight = 0;
    for (const auto& m : members) {
      auto w = rendezvous_weight(m, key);
      if (!best || w > best_weight || (w == best_weight && m < *best)) best = &m, best_weight = w;
    }
    if (best && *best == self) won.push_back(p);
  }
  return won;
}

}  // namespace postwatch::aggregator
