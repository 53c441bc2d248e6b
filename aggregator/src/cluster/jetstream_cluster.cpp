#include "cluster/jetstream_cluster.hpp"

#include "cluster/jetstream_internal.hpp"
#include "cluster/post_partial.hpp"
#include "ingest/batch_ingest.hpp"
#include "postwatch/clock.hpp"
#include "postwatch/event_partitions.hpp"
#include "postwatch/topics.hpp"
#include "rollup/indicator_state.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <random>

namespace postwatch::aggregator {
using nlohmann::json;

namespace {
std::string new_incarnation() {
  std::random_device rd;
  char buf[20];
  std::snprintf(buf, sizeof buf, "%08x%08x", rd(), rd());
  return buf;
}
}  // namespace

JetStreamCluster::Core::Core(boost::asio::io_context& io_, const IndicatorCatalogue& catalogue_, IndicatorState& state_,
                             BatchIngest& ingest_, JetStreamClusterOptions options_, JetStreamClusterHooks hooks_,
                             std::shared_ptr<spdlog::logger> log_)
    : io(io_),
      catalogue(catalogue_),
      state(state_),
      ingest(ingest_),
      options(std::move(options_)),
      hooks(std::move(hooks_)),
      log(std::move(log_)),
      incarnation(new_incarnation()),
      parts(options.partitions),
      partition_posts(options.partitions) {
  for (std::uint32_t i = 0; i < catalogue.posts().size(); ++i) {
    auto p = partitions::partition_of(catalogue.posts()[i].id, options.partitions);
    post_partition.push_back(p);
    partition_posts[p].push_back(i);
  }
}

void JetStreamCluster::Core::on_taken(std::uint32_t p, std::uint64_t generation, SteadyTime valid_until,
                                      std::vector<KvEntry> snapshots, Revisions revisions) {
  auto& s = parts[p];
  s = Partition{};
  s.held = true;
  s.generation = generation;
  s.valid_until = valid_until;
  for (auto [post, rev] : revisions) s.revision[post] = rev;
  // The last holder's state of each post; the stream redelivers what it had not covered.
  for (const auto& e : snapshots) {
    PostPartial partial;
    if (auto err = decode_partial(e.value, catalogue, partial); !err.empty()) {
      counters.snapshots_refused += 1;
      log->error("cluster: the snapshot of post {} is unreadable ({}); starting it from nothing", e.key, err);
      continue;
    }
    auto post = catalogue.post_index(partial.post);
    if (!post) continue;
    state.import_post(*post, partial.rows);
    ingest.import_agents(*post, partial.agents);
  }
  counters.takeovers += 1;
  log->info("cluster: holding partition {} ({} post(s), {} snapshot(s))", p, partition_posts[p].size(),
            snapshots.size());
}

void JetStreamCluster::Core::on_renewed(std::uint32_t p, std::uint64_t generation, SteadyTime valid_until) {
  if (parts[p].held && parts[p].generation == generation) parts[p].valid_until = valid_until;
}

void JetStreamCluster::Core::on_lost(std::uint32_t p, std::uint64_t generation, const std::string& why) {
  auto& s = parts[p];
  if (!s.held || s.generation != generation) return;
  // Nothing pending is acknowledged: the next holder gets it again from the stream.
  s = Partition{};
  counters.leases_lost += 1;
  log->warn("cluster: lost partition {}: {}; stopped applying it", p, why);
}

void JetStreamCluster::Core::on_release_asked(std::uint32_t p, std::uint64_t generation) {
  auto& s = parts[p];
  if (!s.held || s.generation != generation || s.releasing) return;
  // Apply nothing more; the final snapshot covers what was applied. It needs the revisions
  // the snapshot being written returns: then it goes (on_snapshot_done).
  s.releasing = true;
  if (s.in_flight) return;
  SnapshotJob job;
  job.store_mark = hooks.handed_over();
  job.parts.push_back(make_part(p, now_utc_ms(), true));
  submit(std::move(job));
}

void JetStreamCluster::Core::on_released(std::uint32_t p, std::uint64_t generation) {
  if (parts[p].generation != generation) return;
  parts[p] = Partition{};
  counters.releases += 1;
  log->info("cluster: released partition {}", p);
}

void JetStreamCluster::Core::on_snapshot_done(std::uint32_t p, std::uint64_t generation, bool ok, std::size_t acked,
                                              Revisions written) {
  counters.messages_acked += acked;
  auto& s = parts[p];
  if (s.generation != generation) return;
  s.in_flight = false;
  for (auto [post, rev] : written) s.revision[post] = rev;
  if (ok) counters.snapshots_written += 1;
  if (s.held && s.releasing && !s.final_sent) {
    SnapshotJob job;
    job.store_mark = hooks.handed_over();
    job.parts.push_back(make_part(p, now_utc_ms(), true));
    submit(std::move(job));
  } else if (!ok && s.held) {
    // Not written (an engine error): the next snapshot writes every post of the partition.
    for (auto post : partition_posts[p])
      if (std::find(s.dirty.begin(), s.dirty.end(), post) == s.dirty.end()) s.dirty.push_back(post);
  }
}

void JetStreamCluster::Core::on_message(std::uint32_t p, std::uint64_t generation, NatsMessagePtr msg) {
  auto& s = parts[p];
  if (!s.held || s.releasing || s.generation != generation) {
    counters.messages_not_held += 1;  // not acknowledged: the holder gets it from the stream
    return;
  }
  if (std::chrono::steady_clock::now() >= s.valid_until) {
    // The lease may have passed to another instance while this one could not renew it
    // (paused, cut off): apply nothing until the Worker renews or gives it up.
    counters.fenced_messages += 1;
    if (counters.fenced_messages % 1000 == 1)
      log->warn("cluster: the lease of partition {} lapsed before it was renewed; not applying", p);
    return;
  }
  std::string topic;
  topics::AgentTopic t;
  if (!partitions::events_topic(msg->subject(), topic) || !topics::parse_agent_topic(topic, t)) {
    counters.messages_refused += 1;  // acknowledged with the rest: redelivering it cannot help
  } else {
    // libnats puts the payload right after the subject, at any address; the FlatBuffers
    // verifier reads it in place and needs its 8-byte alignment (UBSan caught this).
    auto data = msg->data();
    if (reinterpret_cast<std::uintptr_t>(data.data()) % 8 != 0) {
      aligned.assign(data.begin(), data.end());
      data = aligned;
    }
    hooks.apply(topic, data, now_utc_ms());
    counters.messages_applied += 1;
    if (auto post = catalogue.post_index(t.post))
      if (std::find(s.dirty.begin(), s.dirty.end(), *post) == s.dirty.end()) s.dirty.push_back(*post);
  }
  s.pending.push_back(std::move(msg));
}

void JetStreamCluster::Core::on_post_snapshot(const KvEntry& e) {
  if (e.deleted) return;
  auto post = catalogue.post_index(e.key);
  if (!post || holds(post_partition[*post]) || parts[post_partition[*post]].releasing) return;  // ours
  PostPartial partial;
  if (auto err = decode_partial(e.value, catalogue, partial); !err.empty()) {
    if (++counters.snapshots_refused <= 20) log->warn("cluster: refused the snapshot of post {}: {}", e.key, err);
    return;
  }
  if (partial.owner == options.instance && partial.incarnation == incarnation) return;  // our own, late
  state.import_post(*post, partial.rows);
  ingest.import_agents(*post, partial.agents);
  counters.snapshots_merged += 1;
}

std::string JetStreamCluster::Core::encode_post(std::uint32_t post, std::int64_t now) const {
  PostPartial partial;
  partial.post = catalogue.posts()[post].id;
  partial.owner = options.instance;
  partial.incarnation = incarnation;
  partial.published_at_ms = now;
  partial.rows = state.export_post(post);
  partial.agents = ingest.export_agents(post);
  return encode_partial(partial, catalogue);
}

SnapshotJob::Part JetStreamCluster::Core::make_part(std::uint32_t p, std::int64_t now, bool final) {
  auto& s = parts[p];
  SnapshotJob::Part part{p, s.generation, final, {}, std::move(s.pending)};
  for (auto post : s.dirty)
    part.posts.push_back({post, catalogue.posts()[post].id, encode_post(post, now), s.revision[post]});
  s.pending.clear();
  s.dirty.clear();
  s.in_flight = true;
  s.last_snapshot_ms = now;
  if (final) s.releasing = s.final_sent = true;
  return part;
}

SnapshotJob JetStreamCluster::Core::make_job(std::int64_t now, bool force, bool final) {
  SnapshotJob job;
  job.store_mark = hooks.handed_over();
  for (std::uint32_t p = 0; p < parts.size(); ++p) {
    auto& s = parts[p];
    // In flight: its revisions are not back yet; stop() lets the stream redeliver instead.
    if (!s.held || s.releasing || s.in_flight) continue;
    if (!force && (s.pending.empty() || now - s.last_snapshot_ms < options.snapshot_interval_ms)) continue;
    job.parts.push_back(make_part(p, now, final));
  }
  return job;
}

JetStreamCluster::JetStreamCluster(boost::asio::io_context& io, const IndicatorCatalogue& catalogue,
                                   IndicatorState& state, BatchIngest& ingest, JetStreamClusterOptions options,
                                   JetStreamClusterHooks hooks, std::shared_ptr<spdlog::logger> log)
    : core_(std::make_shared<Core>(io, catalogue, state, ingest, std::move(options), std::move(hooks), std::move(log))),
      worker_(std::make_unique<Worker>(core_)) {
  core_->submit = [w = worker_.get()](SnapshotJob job) { w->submit(std::move(job)); };
  core_->write_board = [w = worker_.get()](std::string image) { w->write_board(std::move(image)); };
  core_->write_shared = [w = worker_.get()](std::string k, std::string v) {
    w->write_shared(std::move(k), std::move(v));
  };
}

JetStreamCluster::~JetStreamCluster() { worker_.reset(); }

void JetStreamCluster::start() { worker_->start(); }

void JetStreamCluster::tick(std::int64_t now_ms) {
  auto job = core_->make_job(now_ms, false, false);
  if (!job.parts.empty()) core_->submit(std::move(job));
  core_->write_mismatches();
}

void JetStreamCluster::stop(std::chrono::milliseconds timeout) {
  worker_->stop(core_->make_job(now_utc_ms(), true, true), timeout);
}

void JetStreamCluster::forget_silence(std::uint64_t id) { core_->write_shared("silence." + std::to_string(id), ""); }

bool JetStreamCluster::ready() const {
  const auto& v = core_->view;
  if (!v.connected || std::find(v.members.begin(), v.members.end(), core_->options.instance) == v.members.end())
    return false;
  return std::all_of(v.won.begin(), v.won.end(), [&](std::uint32_t p) { return core_->holds(p); });
}

bool JetStreamCluster::leader() const {
  // Every act of the leader (the MQTT goal feed, notifications, escalations) asks here: one
  // that woke from a pause past its deadline stops at once, before its Worker has run.
  return core_->view.leader && std::chrono::steady_clock::now() < core_->view.leader_until;
}

bool JetStreamCluster::owns(std::uint32_t post) const {
  return post < core_->post_partition.size() && core_->holds(core_->post_partition[post]);
}

const JetStreamCounters& JetStreamCluster::counters() const { return core_->counters; }

json JetStreamCluster::status_json() const {
  const auto& c = *core_;
  json held = json::array();
  std::size_t posts = 0;
  for (std::uint32_t p = 0; p < c.parts.size(); ++p)
    if (c.holds(p)) {
      held.push_back(p);
      posts += c.partition_posts[p].size();
    }
  const auto& k = c.counters;
  return {{"clustered", true},
          {"engine", "nats-jetstream"},
          {"group", c.options.group},
          {"instance", c.options.instance},
          {"incarnation", c.incarnation},
          {"connected", c.view.connected},
          {"problem", c.view.problem},
          {"members", c.view.members},
          {"ready", ready()},
          {"leader", leader()},
          {"partitions", {{"count", c.options.partitions}, {"won", c.view.won}, {"held", std::move(held)}}},
          {"posts", {{"owned", posts}}},
          {"counters",
           {{"takeovers", k.takeovers},
            {"releases", k.releases},
            {"leases_lost", k.leases_lost},
            {"messages_applied", k.messages_applied},
            {"messages_acked", k.messages_acked},
            {"messages_not_held", k.messages_not_held},
            {"messages_refused", k.messages_refused},
            {"fenced_messages", k.fenced_messages},
            {"board_writes_fenced", k.board_writes_fenced},
            {"board_conflicts", k.board_conflicts},
            {"snapshots_written", k.snapshots_written},
            {"snapshot_conflicts", k.snapshot_conflicts},
            {"snapshots_merged", k.snapshots_merged},
            {"snapshots_refused", k.snapshots_refused}}}};
}

}  // namespace postwatch::aggregator
