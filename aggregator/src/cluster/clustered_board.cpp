#include "cluster/clustered_board.hpp"

#include "rollup/board_image.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace postwatch::aggregator {

void ClusteredBoard::hold_acks(std::vector<JetStreamCluster::SharedAck>& acks) {
  for (auto& ack : acks) held_acks_.push_back(std::move(ack));
  if (held_acks_.size() > kMaxHeldAcks)
    held_acks_.erase(held_acks_.begin(), held_acks_.end() - static_cast<std::ptrdiff_t>(kMaxHeldAcks));
}

BoardChanges ClusteredBoard::follow(StatusBoard& board, const RollupSnapshot& snap, Shared& shared) {
  led_ = false;
  board.observe(snap);
  hold_acks(shared.acks);
  if (!shared.image) return {};
  BoardImage b;
  if (auto err = decode_board_image(*shared.image, catalogue_, b); !err.empty()) {
    log_->error("cluster: the leader's board is unreadable ({}); showing the last one", err);
    return {};
  }
  return board.adopt(std::move(b.goals), std::move(b.pillars), std::move(b.alarms));
}

ClusteredBoard::Outcome ClusteredBoard::tick(StatusBoard& board, const RollupSnapshot& snap,
                                             const std::vector<bool>& silent, Shared shared, std::int64_t now_ms) {
  if (!shared.leader) return {follow(board, snap, shared), std::nullopt};
  // A new leader starts from the last image (it showed it until now).
  if (shared.image && !led_) {
    BoardImage b;
    if (decode_board_image(*shared.image, catalogue_, b).empty())
      board.adopt(std::move(b.goals), std::move(b.pillars), std::move(b.alarms));
  }
  led_ = true;
  for (const auto& m : shared.mismatches)
    for (std::size_t i = 0; i < m.at_ms.size(); ++i)
      board.record_topic_mismatch(m.post, m.claimed[std::min(i, m.claimed.size() - 1)], m.at_ms[i]);
  Outcome out{board.tick(snap, silent, now_ms), std::nullopt};
  hold_acks(shared.acks);
  for (const auto& ack : held_acks_) {
    const Alarm* a = board.find_alarm(ack.alarm);
    if (!a || a->acked_at_ms != 0) continue;
    if (board.acknowledge(ack.alarm, ack.by, ack.comment, ack.at_ms)) out.changes.alarms.push_back(ack.alarm);
  }
  held_acks_.clear();
  if (!out.changes.empty() || now_ms - shared_at_ms_ >= 1000) {
    out.image = encode_board_image(board);
    shared_at_ms_ = now_ms;
  }
  return out;
}

}  // namespace postwatch::aggregator
