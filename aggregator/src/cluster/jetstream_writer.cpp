// The writer thread of JetStreamCluster's Worker: snapshot writes and acknowledgements, the
// board image and the shared acknowledgements and silences. Apart from the lease thread, so a slow store
// commit or write never delays a renewal (jetstream_worker.cpp).
#include "cluster/jetstream_internal.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>

namespace postwatch::aggregator {
using std::chrono::milliseconds;

void JetStreamCluster::Worker::submit(SnapshotJob job) {
  boost::asio::post(writer_io_, [this, job = std::move(job)]() mutable { run_job(job); });
}

void JetStreamCluster::Worker::write_board(std::string image) {
  boost::asio::post(writer_io_, [this, image = std::move(image)] {
    if (set_up_) put_board(image);
    to_core([](Core& c) { c.on_board_written(); });  // written or not, the next image may go
  });
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
    // Another instance leads now (or did while this one could not tell): write no more in this
    // term, and leave the leadership to it.
    board_taken_ = true;
    log_->warn("cluster: another instance wrote the board; {} gives up leading", options_.instance);
    to_core([](Core& c) { c.counters.board_conflicts += 1; });
    boost::asio::post(io_, [this, term] { give_up_leadership(term); });
  } else {
    board_revision_ = 0;  // it may have been written all the same: read the revision again
    log_->warn("cluster: the board was not written: {}", w.error);
  }
}

void JetStreamCluster::Worker::write_shared(std::string key, std::string value) {
  boost::asio::post(writer_io_, [this, key = std::move(key), value = std::move(value)] {
    // Refused only if the cluster is unreachable; the instance that took it has it anyway.
    if (!set_up_)
      log_->warn("cluster: {} not shared: not connected to NATS yet", key);
    else if (value.empty()) {
      if (!board_->remove(key)) log_->warn("cluster: {} not removed from the shared state", key);
    } else if (auto w = board_->put(key, value); !w)
      log_->warn("cluster: {} not shared: {}", key, w.error);
  });
}

void JetStreamCluster::Worker::run_job(SnapshotJob& job) {
  // Acknowledged means durable twice: in this instance's store and in the posts bucket.
  bool stored = hooks_.flush(milliseconds(10'000));
  if (!stored) log_->warn("cluster: the store did not commit within 10 s; snapshot postponed");
  for (auto& part : job.parts) {
    auto p = part.partition;
    auto g = part.generation;
    bool ok = stored, conflict = false;
    std::string why;
    Core::Revisions written;
    for (const auto& post : part.posts) {
      if (!ok) break;
      auto w = posts_->update(post.id, post.encoded, post.revision);
      if (w) {
        written.emplace_back(post.index, w.revision);
        continue;
      }
      ok = false;
      conflict = w.conflict;
      why = w.conflict ? "post " + post.id + " was written by another instance"
                       : "writing post " + post.id + ": " + w.error;
    }
    std::size_t acked = 0;
    if (ok)
      for (auto& m : part.messages) acked += m->ack() ? 1 : 0;
    part.messages.clear();  // not acknowledged unless ok: redelivered after the ack wait, deduped
    if (!ok && !why.empty() && !conflict) log_->warn("cluster: snapshot of partition {} not written: {}", p, why);
    to_core([p, g, ok, acked, conflict, w = std::move(written)](Core& c) mutable {
      if (conflict) c.counters.snapshot_conflicts += 1;
      c.on_snapshot_done(p, g, ok, acked, std::move(w));
    });
    // Leases are the other thread's: it loses or releases the partition.
    if (conflict)
      boost::asio::post(io_, [this, p, g, why] { lose(p, g, why); });
    else if (part.final)
      boost::asio::post(io_, [this, p, g] { release(p, g); });
  }
}

}  // namespace postwatch::aggregator
