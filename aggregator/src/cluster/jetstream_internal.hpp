// The two halves of JetStreamCluster and what passes between them. The Core lives on the
// aggregator's io_context and owns everything the state touches; the Worker lives on a
// thread of its own and makes every blocking libnats call. They talk only by posting these
// messages to each other's executor.
#pragma once

#include "cluster/jetstream_cluster.hpp"
#include "cluster/nats_link.hpp"
#include "rollup/topic_mismatch_log.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <deque>
#include <future>
#include <map>
#include <set>
#include <thread>

namespace postwatch::aggregator {

using SteadyTime = std::chrono::steady_clock::time_point;
using SharedAck = JetStreamCluster::SharedAck;

// The Core's snapshot of some held partitions: every changed post's encoded state and the
// messages it covers, acknowledged once the store and the posts bucket hold it.
struct SnapshotJob {
  struct Part {
    std::uint32_t partition = 0;
    std::uint64_t generation = 0;
    bool final = false;  // the last one before the lease is released
    struct Post {
      std::uint32_t index = 0;
      std::string id, encoded;     // a PostPartial
      std::uint64_t revision = 0;  // the last this holder wrote or read: the compare-and-set
    };
    std::vector<Post> posts;
    std::vector<NatsMessagePtr> messages;
  };
  std::uint64_t store_mark = 0;  // the store's hand-over count when the job was made
  std::vector<Part> parts;
};

// The leader lease's key in the leases bucket, beside the partitions' "p<N>".
inline constexpr const char* kLeaderKey = "leader";

// What the Worker last saw of the group, for the Core's status and readiness.
struct GroupView {
  bool connected = false;
  std::string problem;  // the last setup or engine error, "" when none
  std::vector<std::string> members;
  std::vector<std::uint32_t> won;  // the partitions this instance wins by rendezvous
  bool leader = false;
  // The leader's local deadline (¾ of a lease after its last renewal was sent): past it, the
  // Core acts as a follower even before the Worker says so (a paused leader waking up).
  SteadyTime leader_until{};
};

struct JetStreamCluster::Core : std::enable_shared_from_this<JetStreamCluster::Core> {
  Core(boost::asio::io_context& io, const IndicatorCatalogue& catalogue, IndicatorState& state, BatchIngest& ingest,
       JetStreamClusterOptions options, JetStreamClusterHooks hooks, std::shared_ptr<spdlog::logger> log);

  struct Partition {
    bool held = false, releasing = false, in_flight = false, final_sent = false;
    std::uint64_t generation = 0;
    SteadyTime valid_until{};
    std::vector<NatsMessagePtr> pending;
    std::vector<std::uint32_t> dirty;                 // posts changed since the last snapshot
    std::map<std::uint32_t, std::uint64_t> revision;  // post -> its snapshot's revision
    std::int64_t last_snapshot_ms = 0;
  };
  using Revisions = std::vector<std::pair<std::uint32_t, std::uint64_t>>;

  // From the Worker.
  void on_taken(std::uint32_t p, std::uint64_t generation, SteadyTime valid_until, std::vector<KvEntry> snapshots,
                Revisions revisions);
  void on_renewed(std::uint32_t p, std::uint64_t generation, SteadyTime valid_until);
  void on_lost(std::uint32_t p, std::uint64_t generation, const std::string& why);
  void on_release_asked(std::uint32_t p, std::uint64_t generation);
  void on_released(std::uint32_t p, std::uint64_t generation);
  void on_snapshot_done(std::uint32_t p, std::uint64_t generation, bool ok, std::size_t acked, Revisions written);
  void on_message(std::uint32_t p, std::uint64_t generation, NatsMessagePtr msg);
  void on_post_snapshot(const KvEntry& e);  // another holder's post, from the watch
  void on_board_entry(const KvEntry& e);    // the leader's board, a shared acknowledgement or silence
  void on_board_written();
  void on_view(GroupView v) { view = std::move(v); }

  // Snapshots of the held partitions that are due (or all of them, `force`).
  SnapshotJob make_job(std::int64_t now_ms, bool force, bool final);
  SnapshotJob::Part make_part(std::uint32_t p, std::int64_t now_ms, bool final);
  std::string encode_post(std::uint32_t post, std::int64_t now_ms) const;
  bool holds(std::uint32_t p) const { return p < parts.size() && parts[p].held && !parts[p].releasing; }

  boost::asio::io_context& io;
  const IndicatorCatalogue& catalogue;
  IndicatorState& state;
  BatchIngest& ingest;
  JetStreamClusterOptions options;
  JetStreamClusterHooks hooks;
  std::shared_ptr<spdlog::logger> log;
  std::string incarnation;
  std::vector<Partition> parts;
  std::vector<std::uint32_t> post_partition;
  std::vector<std::vector<std::uint32_t>> partition_posts;
  GroupView view;
  JetStreamCounters counters;
  std::function<void(SnapshotJob)> submit;  // to the Worker
  std::function<void(std::string)> write_board;
  std::function<void(std::string, std::string)> write_shared;  // key, value (empty: delete the key)
  std::optional<std::string> board_latest;                     // from the watch, not yet taken
  std::string aligned;                                         // a misaligned payload's copy (on_message)
  std::vector<SharedAck> acks_new;
  std::vector<std::string> silences_new;   // silence_json bodies from the watch, not yet taken
  std::vector<std::string> figures_new;    // ministry figures from the watch, not yet taken
  struct MismatchOut : TopicMismatchLog {  // the last 16 attempts
    bool dirty = false;
  };
  std::map<std::string, MismatchOut> mismatches_out;     // this instance's attempts, by topic post
  std::map<std::string, std::uint64_t> mismatch_totals;  // board key -> the total taken so far
  std::vector<SharedMismatch> mismatches_new;
  void write_mismatches();  // the dirty ones, on tick()
  void on_mismatch_entry(const KvEntry& e);
  bool board_in_flight = false;
  std::optional<std::string> board_waiting;  // the newest image while one is being written
};

struct JetStreamCluster::Worker {
  Worker(std::shared_ptr<Core> core);
  ~Worker();
  void start();
  void submit(SnapshotJob job);
  void write_board(std::string image);                    // on the writer thread, by the leader (fenced)
  void write_shared(std::string key, std::string value);  // on the writer thread; empty value deletes
  // Last snapshots, acknowledgements, leases and member key released; then the thread ends.
  void stop(SnapshotJob last, std::chrono::milliseconds timeout);

 private:
  struct Held {
    std::uint64_t generation = 0, lease_revision = 0;
    SteadyTime renewed_at{}, consumer_checked_at{};
    bool release_asked = false;
    std::unique_ptr<NatsSubscription> subscription;
  };
  template <class Fn>
  void to_core(Fn&& fn);
  void cycle();
  bool setup();
  void refresh_members();
  // A watch of `bucket` that is made again when it falls behind (its node died), saying so.
  std::unique_ptr<KvBucket::Watch> watch(KvBucket& bucket, std::function<void(KvEntry)> fn, std::string& error);
  void renew_due();  // member key, leases and leadership whose renewal is due
  void hold(std::uint32_t p);
  ConsumerSpec consumer_spec(std::uint32_t p) const;
  // Making a replicated consumer takes the engine 0.1-0.8 s here (it elects a Raft group), so
  // the consumers of the partitions to take are made at once, each on a thread of its own: a
  // fresh cluster's first instance then holds its 16 partitions in about a second, not 7.
  static constexpr std::size_t kConsumersMadeAtOnce = 16;
  void make_consumer(std::uint32_t p);                       // started unless under way
  bool consumer_made(std::uint32_t p, SteadyTime deadline);  // made by `deadline` (an error: a problem)
  std::unique_ptr<NatsSubscription> subscribe(std::uint32_t p, std::uint64_t generation, std::string& error);
  void check_consumers();
  void renew(std::uint32_t p, Held& h);
  void lose(std::uint32_t p, std::uint64_t generation, const std::string& why);
  void release(std::uint32_t p, std::uint64_t generation);
  void run_job(SnapshotJob& job);  // on the writer thread
  void keep_leadership();
  void lead_until(SteadyTime sent);             // a leader key written at `sent`: the writer's deadline
  void give_up_leadership(std::uint64_t term);  // another instance wrote the board in `term`
  void reread_board(std::uint64_t term);        // on the writer thread: `term` goes on leading
  void put_board(const std::string& image);     // on the writer thread
  std::string lease_value() const;
  std::string why_refused(const std::string& key);  // a lease key's update was refused: why

  std::weak_ptr<Core> core_;
  // Copies of what the Core owns that the Worker reads (immutable after construction).
  JetStreamClusterOptions options_;
  const IndicatorCatalogue& catalogue_;
  std::shared_ptr<spdlog::logger> log_;
  std::string incarnation_;
  std::vector<std::vector<std::uint32_t>> partition_posts_;
  boost::asio::io_context& core_io_;
  JetStreamClusterHooks hooks_;

  // Leases, membership and takeovers on one thread; snapshot writes on another, so a slow
  // store commit or write never delays a renewal.
  boost::asio::io_context io_, writer_io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_, writer_guard_;
  boost::asio::steady_timer timer_;
  std::thread thread_, writer_thread_;
  std::unique_ptr<NatsLink> link_;
  std::unique_ptr<KvBucket> members_, leases_, posts_, board_;
  std::unique_ptr<KvBucket::Watch> watch_, board_watch_, members_watch_;
  std::map<std::uint32_t, std::future<std::string>> consumers_made_;  // after link_: they end before it goes
  std::set<std::uint32_t> consumers_ready_;                           // made or found by this instance
  std::map<std::string, SteadyTime> member_seen_;                     // member -> when its key was last written
  std::map<std::uint32_t, Held> held_;
  std::atomic<bool> set_up_{false};  // the buckets exist (the writer reads it)
  std::uint64_t next_generation_ = 0;
  std::uint64_t leader_revision_ = 0;
  SteadyTime leader_renewed_at_{}, member_put_at_{};
  // The leadership as the writer thread sees it, fenced like a partition's: the term (one more
  // each time the leader key is taken) and until when the key is surely still ours, ¾ of the
  // lease after the write that took or renewed it was sent (the epoch: not leading).
  std::atomic<std::uint64_t> leader_term_{0};
  std::atomic<SteadyTime> leader_valid_until_{SteadyTime{}};
  // The writer's: the term it writes the board in, the board's revision it last wrote or read
  // (0: read it before the next write), and whether another instance wrote it in that term.
  std::uint64_t board_term_ = 0, board_revision_ = 0;
  bool board_taken_ = false;
  GroupView view_;
  std::string last_logged_problem_;
};

template <class Fn>
void JetStreamCluster::Worker::to_core(Fn&& fn) {
  boost::asio::post(core_io_, [core = core_, fn = std::forward<Fn>(fn)]() mutable {
    if (auto c = core.lock()) fn(*c);
  });
}

}  // namespace postwatch::aggregator
