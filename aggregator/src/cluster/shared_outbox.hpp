// The outbox mirror of a cluster on NATS JetStream (docs/alerting.md, "In a cluster"): each
// pending notification is a key <instance>.<notification_id> in the replicated bucket
// postwatch-<group>-outbox. The leader takes over the keys of instances whose member key is
// gone (dead, or away longer than a lease) by compare-and-set, marking them "taken_by" itself;
// the owner, running again, sees the mark before it would deliver, drops its copy and removes
// the key. Its own connection, used from the outbox's worker thread only.
#pragma once

#include "alerting/outbox_mirror.hpp"
#include "cluster/jetstream_cluster.hpp"

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

namespace spdlog {
class logger;
}

namespace postwatch::aggregator {

class NatsLink;
class KvBucket;

class SharedOutbox final : public OutboxMirror {
 public:
  // Connects in the background; throws std::runtime_error when the options are unusable.
  SharedOutbox(const JetStreamClusterOptions& options, std::shared_ptr<spdlog::logger> log);
  ~SharedOutbox() override;

  // From the io thread, each tick: orphans are taken over only while this instance leads.
  void set_leading(bool leading) { leading_ = leading; }

  MirrorState put(const std::string& notification_id, const PendingNotification& n) override;
  MirrorState state(const std::string& notification_id) override;
  void remove(const std::string& notification_id) override;
  std::vector<Orphan> orphans() override;
  bool take(const Orphan& orphan) override;

 private:
  bool ready();  // connected, buckets open
  std::string key(const std::string& notification_id) const;

  JetStreamClusterOptions options_;
  std::shared_ptr<spdlog::logger> log_;
  std::unique_ptr<NatsLink> link_;
  std::unique_ptr<KvBucket> outbox_, members_;
  std::atomic<bool> leading_{false};
  std::string problem_;  // the last one logged, so a long outage is one line
  // Listing the keys makes an ephemeral consumer on the servers: at most every 5 s, by the leader.
  std::chrono::steady_clock::time_point listed_at_{};
};

}  // namespace postwatch::aggregator
