// The leader of a JetStreamCluster (docs/scale-out.md, "One board"): its lease key, renewed on
// the lease thread like a partition's, and the board image it writes on the writer thread,
// both fenced by the same local deadline.
#include "cluster/jetstream_internal.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>

namespace postwatch::aggregator {
using std::chrono::milliseconds;

void JetStreamCluster::Worker::keep_leadership() {
  auto sent = std::chrono::steady_clock::now();
  if (leader_revision_ == 0) {
    if (auto w = leases_->create(kLeaderKey, lease_value())) {
      leader_revision_ = w.revision;
      leader_renewed_at_ = sent;
      ++leader_term_;
      lead_until(sent);
      log_->info("cluster {}: {} publishes the goal feed", options_.group, options_.instance);
    }
  } else if (sent - leader_renewed_at_ >= milliseconds(options_.lease_ms / 3)) {
    auto w = leases_->update(kLeaderKey, lease_value(), leader_revision_);
    if (w) {
      leader_revision_ = w.revision;
      leader_renewed_at_ = sent;
      lead_until(sent);
    } else if (w.conflict || sent - leader_renewed_at_ >= milliseconds(options_.lease_ms * 3 / 4)) {
      leader_revision_ = 0;
      leader_valid_until_ = SteadyTime{};
      log_->warn("cluster {}: {} no longer publishes the goal feed: {}", options_.group, options_.instance,
                 w.conflict ? "the leader key was refused: " + why_refused(std::string(kLeaderKey))
                            : std::string("its lease could not be renewed in time"));
    }
  }
  const bool changed = view_.leader != (leader_revision_ != 0) || view_.leader_until != leader_valid_until_.load();
  view_.leader = leader_revision_ != 0;
  view_.leader_until = leader_valid_until_.load();
  // At once, not at the cycle's end: a cycle taking several partitions over can outlast the
  // deadline the Core checks.
  if (changed)
    to_core([leader = view_.leader, until = view_.leader_until](Core& c) {
      c.view.leader = leader;
      c.view.leader_until = until;
    });
}

void JetStreamCluster::Worker::lead_until(SteadyTime sent) {
  // As a partition's holder stops applying (Core::on_message): the key may pass to another
  // instance a whole lease after the write, by the server's clock; ¾ of it leaves the margin.
  leader_valid_until_ = sent + milliseconds(options_.lease_ms * 3 / 4);
}

void JetStreamCluster::Worker::give_up_leadership(std::uint64_t term) {
  if (leader_revision_ == 0 || leader_term_ != term) return;
  // The lease decides who leads. Still holding the key, this instance is the leader and the
  // other writer a former one: it goes on, from the board's revision as it is now. Otherwise
  // the key's holder leads already; giving up costs no gap.
  std::string error;
  if (auto key = leases_->get(kLeaderKey, &error); key && key->revision == leader_revision_) {
    log_->warn("cluster {}: {} still holds the leader key; it writes the board again from its current revision",
               options_.group, options_.instance);
    boost::asio::post(writer_io_, [this, term] { reread_board(term); });
    return;
  }
  leader_revision_ = 0;
  leader_valid_until_ = SteadyTime{};
  view_.leader = false;
  view_.leader_until = SteadyTime{};
  to_core([v = view_](Core& c) { c.on_view(v); });
}

// The leader is fenced as a partition's holder is (docs/scale-out.md, "One board"): one paused
// past its lease (a stall, a frozen VM) may run again before its lease thread notices, and must
// not write its old board over its successor's.
void JetStreamCluster::Worker::put_board(const std::string& image) {
  // The term first: every term ends with the deadline reset, so a deadline still ahead when
  // read after it is that term's (or a later one's, of this instance too).
  const std::uint64_t term = leader_term_;
  const bool lapsed = std::chrono::steady_clock::now() >= leader_valid_until_.load();
  if (lapsed || (term == board_term_ && board_taken_)) {
    to_core([lapsed](Core& c) {
      if (++c.counters.board_writes_fenced % 100 == 1 && lapsed)
        c.log->warn("cluster: the leader lease may have lapsed before it was renewed; the board was not written");
    });
    return;
  }
  if (term != board_term_) {  // a new term: from whatever revision the board has now
    board_term_ = term;
    board_revision_ = 0;
    board_taken_ = false;
  }
  KvWrite w;
  if (board_revision_ != 0) {
    w = board_->update("board", image, board_revision_);
  } else {
    std::string error;
    auto current = board_->get("board", &error);
    if (!error.empty()) {
      log_->warn("cluster: the board was not written: {}", error);
      return;
    }
    w = current ? board_->update("board", image, current->revision) : board_->create("board", image);
  }
  if (w) {
    board_revision_ = w.revision;
  } else if (w.conflict) {
    // Another instance wrote it: write no more in this term until the lease thread has seen
    // who holds the leader key (give_up_leadership).
    board_taken_ = true;
    log_->warn("cluster: another instance wrote the board; {} stops writing it", options_.instance);
    to_core([](Core& c) { c.counters.board_conflicts += 1; });
    boost::asio::post(io_, [this, term] { give_up_leadership(term); });
  } else {
    board_revision_ = 0;  // it may have been written all the same: read the revision again
    log_->warn("cluster: the board was not written: {}", w.error);
  }
}

void JetStreamCluster::Worker::reread_board(std::uint64_t term) {
  if (board_term_ != term) return;
  board_taken_ = false;
  board_revision_ = 0;
}

}  // namespace postwatch::aggregator
