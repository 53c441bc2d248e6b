// The board of an instance in a cluster, one call per tick (docs/scale-out.md, "One board").
// A follower shows the leader's last image and keeps the alarm acknowledgements taken on any
// instance; a new leader starts from that image. The leader ticks the board, applies every
// acknowledgement it holds (one applied twice changes nothing) and shares its image when
// something changed, and every second.
#pragma once

#include "cluster/jetstream_cluster.hpp"
#include "rollup/status_board.hpp"

#include <spdlog/logger.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace postwatch::aggregator {

class ClusteredBoard {
 public:
  // A follower keeps the latest this many. An acknowledgement taken after the leader's last
  // image and before it applied it (it paused or died) would be lost otherwise.
  static constexpr std::size_t kMaxHeldAcks = 10'000;

  // What the cluster brought since the last tick.
  struct Shared {
    bool leader = false;
    std::vector<JetStreamCluster::SharedAck> acks;
    std::vector<JetStreamCluster::SharedMismatch> mismatches;
    std::optional<std::string> image;  // the leader's newest board image
  };
  struct Outcome {
    BoardChanges changes;
    std::optional<std::string> image;  // to share, as the leader
  };

  ClusteredBoard(const IndicatorCatalogue& catalogue, std::shared_ptr<spdlog::logger> log)
      : catalogue_(catalogue), log_(std::move(log)) {}
  Outcome tick(StatusBoard& board, const RollupSnapshot& snap, const std::vector<bool>& silent, Shared shared,
               std::int64_t now_ms);

 private:
  BoardChanges follow(StatusBoard& board, const RollupSnapshot& snap, Shared& shared);
  void hold_acks(std::vector<JetStreamCluster::SharedAck>& acks);  // the latest kMaxHeldAcks
  const IndicatorCatalogue& catalogue_;
  std::shared_ptr<spdlog::logger> log_;
  bool led_ = false;  // at the last tick
  std::vector<JetStreamCluster::SharedAck> held_acks_;
  std::int64_t shared_at_ms_ = 0;
};

}  // namespace postwatch::aggregator
