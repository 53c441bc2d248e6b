// Which aggregator instance owns which post, by rendezvous (highest random weight)
// hashing: every instance computes the same answer from the same member list, and a
// member joining or leaving moves only the posts it wins or held (docs/scale-out.md).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace postwatch::aggregator {

struct ClusterMemberInfo {
  std::string instance;     // stable name (--instance-id)
  std::string incarnation;  // new on every start: tells a restarted instance from its past self
  std::string ready_view;   // the view whose subscriptions this member holds (empty: none yet)
  std::int64_t started_at_ms = 0;
};

class PartitionMap {
 public:
  // Sorted by instance; an instance listed twice keeps its last entry.
  explicit PartitionMap(std::vector<ClusterMemberInfo> members = {});

  const std::vector<ClusterMemberInfo>& members() const { return members_; }
  // Names the member set: equal ids mean every member computes the same owners.
  const std::string& view() const { return view_; }
  const ClusterMemberInfo* find(std::string_view instance) const;
  // Members ranked for a post, best first: [0] owns it, [1] backs it up.
  std::vector<const ClusterMemberInfo*> ranked(std::string_view post) const;
  const ClusterMemberInfo* owner(std::string_view post) const;
  const ClusterMemberInfo* backup(std::string_view post) const;
  // The member that publishes the global goal feed over MQTT: the first by name.
  const ClusterMemberInfo* leader() const { return members_.empty() ? nullptr : &members_.front(); }

 private:
  std::vector<ClusterMemberInfo> members_;
  std::string view_;
};

std::uint64_t rendezvous_weight(std::string_view instance, std::string_view post);

}  // namespace postwatch::aggregator
