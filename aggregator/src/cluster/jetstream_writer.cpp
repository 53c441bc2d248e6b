// The writer thread of JetStreamCluster's Worker: snapshot writes and acknowledgements, and
// the shared acknowledgements and silences (the board image: jetstream_leader.cpp). Apart from the lease thread, so a
// slow store commit or write never delays a renewal (jetstream_worker.cpp).
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
