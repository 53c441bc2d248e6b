// Who the members of a JetStreamCluster are (docs/scale-out.md, "Members"): each instance's
// key in the members bucket, written every third of a lease, seen through a watch; and the
// partitions this instance wins among them.
#include "cluster/jetstream_internal.hpp"
#include "cluster/partition_rendezvous.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>

#include <algorithm>

namespace postwatch::aggregator {
using std::chrono::milliseconds;

void JetStreamCluster::Worker::watch_members(std::string& error) {
  own_key_watched_at_ = std::chrono::steady_clock::now();  // as if seen: the watch gets two leases
  members_watch_ = members_->watch_all(
      [this](KvEntry e) {
        boost::asio::post(io_, [this, e = std::move(e)] {
          auto now = std::chrono::steady_clock::now();
          if (e.key == options_.instance) own_key_watched_at_ = now;
          if (e.deleted)
            member_seen_.erase(e.key);  // left on purpose
          else
            member_seen_[e.key] = now;
        });
      },
      &error);
}

// libnats' watch is an ordered consumer on one node; when that node dies, the watch brings
// nothing until the engine has a new meta leader and the consumer is made again (30 s and
// more seen in tests). Our own key, written every third of a lease, tells us: once the watch
// has shown none of our writes for two leases, it is watched again (and again, every two
// leases, while making the watch fails).
void JetStreamCluster::Worker::rewatch_members_if_stale() {
  auto now = std::chrono::steady_clock::now();
  auto lease = milliseconds(options_.lease_ms);
  if (now - member_put_at_ > lease / 2 || now - own_key_watched_at_ < 2 * lease) return;
  log_->warn("cluster {}: the members watch has shown none of this instance's writes for {} ms: watching again",
             options_.group, std::chrono::duration_cast<milliseconds>(now - own_key_watched_at_).count());
  members_watch_.reset();
  std::string error;
  watch_members(error);
  if (!error.empty()) view_.problem = "watching the members again: " + error;
}

void JetStreamCluster::Worker::refresh_members() {
  if (member_put_at_ == SteadyTime{}) renew_due();  // our own key first
  rewatch_members_if_stale();
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
