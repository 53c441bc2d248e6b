#include "cluster/partition_map.hpp"

#include <algorithm>
#include <cstdio>

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

std::uint64_t rendezvous_weight(std::string_view instance, std::string_view post) {
  return mix(fnv1a(post, fnv1a("/", fnv1a(instance))));
}

PartitionMap::PartitionMap(std::vector<ClusterMemberInfo> members) {
  std::stable_sort(members.begin(), members.end(),
                   [](const auto& a, const auto& b) { return a.instance < b.instance; });
  for (auto& m : members) {
    if (!members_.empty() && members_.back().instance == m.instance)
      members_.back() = std::move(m);
    else
      members_.push_back(std::move(m));
  }
  std::uint64_t h = 1469598103934665603ULL;
  for (const auto& m : members_) h = fnv1a(m.incarnation, fnv1a("|", fnv1a(m.instance, h)));
  char buf[24];
  std::snprintf(buf, sizeof buf, "%zu-%016llx", members_.size(), static_cast<unsigned long long>(mix(h)));
  view_ = buf;
}

const ClusterMemberInfo* PartitionMap::find(std::string_view instance) const {
  for (const auto& m : members_)
    if (m.instance == instance) return &m;
  return nullptr;
}

std::vector<const ClusterMemberInfo*> PartitionMap::ranked(std::string_view post) const {
  std::vector<std::pair<std::uint64_t, const ClusterMemberInfo*>> w;
  w.reserve(members_.size());
  for (const auto& m : members_) w.emplace_back(rendezvous_weight(m.instance, post), &m);
  std::sort(w.begin(), w.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second->instance < b.second->instance;
  });
  std::vector<const ClusterMemberInfo*> out;
  out.reserve(w.size());
  for (const auto& [weight, m] : w) out.push_back(m);
  return out;
}

const ClusterMemberInfo* PartitionMap::owner(std::string_view post) const {
  auto r = ranked(post);
  return r.empty() ? nullptr : r[0];
}

const ClusterMemberInfo* PartitionMap::backup(std::string_view post) const {
  auto r = ranked(post);
  return r.size() < 2 ? nullptr : r[1];
}

}  // namespace postwatch::aggregator
