// One aggregator instance's part in a cluster on NATS JetStream (docs/scale-out.md).
//
// The broker maps every agent of a post onto one of N partition subjects, captured by one
// replicated work-queue stream. An instance holds a partition by a lease key in a key-value
// bucket (create-if-absent, renewed by revision). Holding it, it reads the partition through
// a durable consumer, applies its messages, writes each changed post's state to the posts
// bucket by compare-and-set, and acknowledges a message only once that snapshot and its own
// store cover it. A successor loads the snapshots, and the consumer delivers it everything
// not acknowledged (after the ack wait, which equals the lease), through the same dedupe. Every instance watches the
// posts bucket, so each serves the global state.
//
// Runs on the io_context; every blocking libnats call runs on a worker thread of its own.
#pragma once

#include "postwatch/catalogue.hpp"

#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace spdlog {
class logger;
}

namespace postwatch::aggregator {

class IndicatorState;
class BatchIngest;

struct JetStreamClusterOptions {
  std::string group;     // names the buckets and consumers: instances of one group share the posts
  std::string instance;  // stable and unique within the group
  std::vector<std::string> servers;
  std::string user, password;
  std::uint32_t partitions = 16;  // must equal the broker's mapping (postwatch-broker-config --nats)
  int replicas = 3;               // of the stream and the buckets; 1 for a single node
  // A holder that cannot renew its lease for this long loses it; a dead holder's partitions
  // are taken over after at most this (plus one poll).
  std::int64_t lease_ms = 3'000;
  std::int64_t snapshot_interval_ms = 200;
};

struct JetStreamClusterHooks {
  // An events message of a held partition: through BatchIngest into the state and the store.
  std::function<void(const std::string& topic, std::string_view payload, std::int64_t received_ms)> apply;
  // The store's hand-over count, and a flush of everything handed over (called from the worker).
  std::function<std::uint64_t()> handed_over;
  std::function<bool(std::chrono::milliseconds)> flush;
};

struct JetStreamCounters {
  std::uint64_t takeovers = 0, releases = 0, leases_lost = 0;
  std::uint64_t messages_applied = 0, messages_acked = 0, messages_not_held = 0, messages_refused = 0;
  std::uint64_t snapshots_written = 0, snapshot_conflicts = 0, snapshots_merged = 0, snapshots_refused = 0;
  std::uint64_t fenced_messages = 0;  // arrived after the lease lapsed locally: not applied
  // Board images the leader did not write: its lease could have lapsed (or it no longer
  // leads), or another instance wrote the board since its last write (then it gives up leading).
  std::uint64_t board_writes_fenced = 0, board_conflicts = 0;
};

class JetStreamCluster {
 public:
  JetStreamCluster(boost::asio::io_context& io, const IndicatorCatalogue& catalogue, IndicatorState& state,
                   BatchIngest& ingest, JetStreamClusterOptions options, JetStreamClusterHooks hooks,
                   std::shared_ptr<spdlog::logger> log);
  ~JetStreamCluster();
  JetStreamCluster(const JetStreamCluster&) = delete;
  JetStreamCluster& operator=(const JetStreamCluster&) = delete;

  void start();
  void tick(std::int64_t now_ms);  // snapshots that are due
  // Graceful stop: a last snapshot of every held partition, acknowledged, then the leases
  // and the member key go, so the others take over at once. Blocks up to `timeout`.
  void stop(std::chrono::milliseconds timeout);

  // The shared board (docs/scale-out.md): the leader writes its image of the shown statuses
  // and alarms; the others take the latest one. An acknowledgement taken on any instance is
  // shared, and the leader applies it.
  void publish_board(std::string image);
  std::optional<std::string> take_board();
  struct SharedAck {
    std::uint64_t alarm = 0;
    std::string by, comment;
    std::int64_t at_ms = 0;
  };
  void share_ack(const SharedAck& ack);
  std::vector<SharedAck> take_acks();  // shared since the last call (all of them at first)
  // Silences and maintenance windows (docs/alerting.md), as silence_json: whichever instance
  // takes or ends one shares it, every instance merges what the others shared, and one
  // dropped after its keeping time is forgotten by the leader.
  void share_silence(std::uint64_t id, std::string silence_json);
  void forget_silence(std::uint64_t id);
  std::vector<std::string> take_silences();  // shared since the last call (all of them at first)
  // The ministry's figures (docs/strategy-progress.md), one key each: the instance that stores
  // one shares it, and every instance keeps what the others shared (SharedFigures).
  void share_figure(const std::string& key, std::string figure_json);
  std::vector<std::string> take_figures();  // shared since the last call (all of them at first)
  // A batch on one post's topic that claims another post or agent is seen by the holder of
  // the topic's post; the leader counts the attempts and raises the alarm. Shared per post
  // and instance, at most once per tick(), so a flood of forged batches is a few writes.
  struct SharedMismatch {
    std::string post;                  // the post whose topic was used
    std::vector<std::string> claimed;  // "post/agent" the batches claimed (up to 8)
    std::vector<std::int64_t> at_ms;   // the attempts new since the last take (up to 16)
  };
  void share_mismatch(const std::string& topic_post, const std::string& claimed, std::int64_t at_ms);
  std::vector<SharedMismatch> take_mismatches();

  bool ready() const;  // connected, a member, and holding every partition it won
  // Holds the leader lease and is within its local deadline: publishes the MQTT goal feed and
  // sends the notifications.
  bool leader() const;
  bool owns(std::uint32_t post) const;
  const JetStreamCounters& counters() const;
  nlohmann::json status_json() const;

  struct Core;    // the io_context side (jetstream_core.hpp)
  struct Worker;  // the libnats side (jetstream_worker.hpp)

 private:
  std::shared_ptr<Core> core_;
  std::unique_ptr<Worker> worker_;
};

}  // namespace postwatch::aggregator
