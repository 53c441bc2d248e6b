// Who the members of a JetStreamCluster are (docs/scale-out.md, "Members"): each instance's
// key in the members bucket, written every third of a lease, seen through a watch; the
// partitions this instance wins among them; and how the worker watches its buckets.
#include "cluster/jetstream_internal.hpp"
#include "cluster/partition_rendezvous.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>

#include <algorithm>

namespace postwatch::aggregator {
using std::chrono::milliseconds;

// Every watch of the worker: libnats' watch stalls while its node's consumer is made again
// (30 s and more seen in tests, when a lone instance then saw no member, itself included, and
// held nothing), so each is made again once it has not shown for two leases what its bucket
// held.
std::unique_ptr<KvBucket::Watch> JetStreamCluster::Worker::watch(KvBucket& bucket, std::function<void(KvEntry)> fn,
                                                                 std::string& error) {
  KvWatchOptions o;
  o.stale_after = milliseconds(2 * options_.lease_ms);
  o.on_rewatch = [log = log_, group = options_.group, name = bucket.name()](const std::string& what) {
    log->warn("cluster {}: the watch of {} {}", group, name, what);
  };
  return bucket.watch_all(std::move(fn), &error, std::move(o));
}

void JetStreamCluster::Worker::refresh_members() {
  if (member_put_at_ == SteadyTime{}) renew_due();  // our own key first
  // A member is one whose key was written within the lease (each writes every L/3). The
  // watch brings every write; 2.9 sends no event when a key expires, so age decides, on our
  // own clock. (Listing the keys instead made an ephemeral consumer on every poll, which
  // slowed the whole cluster's meta layer enough for leases to lapse.)
  auto now = std::chrono::steady_clock::now();
  std::vector<std::string> names;
  for (auto it = member_seen_.begin(); it != member_seen_.end();) {
    if (now - it->second > milliseconds(options_.lease_ms)) {
      it = member_seen_.erase(it);
      continue;
    }
    names.push_back(it->first);
    ++it;
  }
  if (names != view_.members)
    log_->info("cluster {}: {} member(s): {}", options_.group, names.size(), fmt::join(names, ", "));
  view_.members = names;
  bool member = std::find(names.begin(), names.end(), options_.instance) != names.end();
  view_.won = member ? partitions_won(names, options_.instance, options_.partitions) : std::vector<std::uint32_t>{};
}

}  // namespace postwatch::aggregator
