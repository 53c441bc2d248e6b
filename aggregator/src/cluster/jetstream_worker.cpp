// The libnats side of JetStreamCluster: membership, leases, takeovers, snapshot writes and
// acknowledgements, on a thread of its own (every call here may wait for the engine).
#include "cluster/jetstream_internal.hpp"
#include "cluster/post_partial.hpp"
#include "postwatch/clock.hpp"
#include "postwatch/event_partitions.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <future>
#include <tuple>

namespace postwatch::aggregator {
using nlohmann::json;
using std::chrono::milliseconds;

namespace {
std::string lease_key(std::uint32_t p) { return "p" + std::to_string(p); }
}  // namespace

JetStreamCluster::Worker::Worker(std::shared_ptr<Core> core)
    : core_(core),
      options_(core->options),
      catalogue_(core->catalogue),
      log_(core->log),
      incarnation_(core->incarnation),
      partition_posts_(core->partition_posts),
      core_io_(core->io),
      hooks_(core->hooks),
      guard_(io_.get_executor()),
      writer_guard_(writer_io_.get_executor()),
      timer_(io_) {}

JetStreamCluster::Worker::~Worker() {
  guard_.reset();
  writer_guard_.reset();
  io_.stop();
  writer_io_.stop();
  if (thread_.joinable()) thread_.join();
  if (writer_thread_.joinable()) writer_thread_.join();
  watch_.reset();
  board_watch_.reset();
  members_watch_.reset();
  held_.clear();  // drains the subscriptions
}

void JetStreamCluster::Worker::start() {
  thread_ = std::thread([this] { io_.run(); });
  writer_thread_ = std::thread([this] { writer_io_.run(); });
  boost::asio::post(io_, [this] { cycle(); });
}

std::string JetStreamCluster::Worker::lease_value() const {
  return json{{"instance", options_.instance}, {"incarnation", incarnation_}, {"at_ms", now_utc_ms()}}.dump();
}

// A renewal refused by compare-and-set is not always another instance: the key may have
// expired while the bucket's stream elected a leader, or a renewal of ours that timed out may
// have been written after all. The log should say which.
std::string JetStreamCluster::Worker::why_refused(const std::string& key) {
  std::string error;
  auto e = leases_->get(key, &error);
  if (!error.empty()) return "its key moved on (" + error + ")";
  if (!e || e->deleted) return "its key expired before a renewal reached the engine";
  auto holder = json::parse(e->value, nullptr, false);
  auto instance = holder.is_object() ? holder.value("instance", "?") : "?";
  if (instance == options_.instance && holder.value("incarnation", "") == incarnation_)
    return "a renewal of ours that timed out was written after all";
  return "instance " + instance + " holds it";
}

bool JetStreamCluster::Worker::setup() {
  try {
    if (!link_)
      link_ = std::make_unique<NatsLink>(
          NatsLinkOptions{options_.servers, "postwatch-aggregator " + options_.instance, options_.user,
                          options_.password, 2'000},
          [log = log_, group = options_.group](bool up, const std::string& url) {
            if (up)
              log->info("cluster {}: NATS connection back, to {}", group, url);
            else
              log->warn("cluster {}: NATS connection lost; trying the other servers every 250 ms", group);
          });
  } catch (const std::runtime_error& e) {
    view_.problem = e.what();
    return false;
  }
  if (!link_->connected()) {
    view_.problem = "no NATS server answers yet";
    return false;
  }
  // The events stream and four buckets are replicated streams, which a new group makes: each
  // costs the engine up to a second here (it elects a Raft group), so all five at once.
  std::string prefix = "postwatch-" + options_.group + "-";
  std::vector<std::future<std::string>> made;
  made.push_back(std::async(std::launch::async, [this] {
    return link_->ensure_stream(
        {std::string(partitions::events_stream), {partitions::all_subjects()}, options_.replicas});
  }));
  for (auto [bucket, name, ttl_ms] :
       {std::tuple{&members_, "members", options_.lease_ms}, std::tuple{&leases_, "leases", options_.lease_ms},
        std::tuple{&posts_, "posts", std::int64_t{0}}, std::tuple{&board_, "board", std::int64_t{0}}})
    if (!*bucket)
      made.push_back(std::async(std::launch::async, [this, bucket, name = prefix + name, ttl_ms] {
        std::string error;
        *bucket = link_->bucket(name, ttl_ms, options_.replicas, error);
        return error;
      }));
  std::string error;
  for (auto& m : made)
    if (auto e = m.get(); error.empty()) error = e;
  if (error.empty() && !members_watch_)
    members_watch_ = watch(
        *members_,
        [this](KvEntry e) {
          boost::asio::post(io_, [this, e = std::move(e)] {
            if (e.deleted)
              member_seen_.erase(e.key);  // left on purpose
            else
              member_seen_[e.key] = std::chrono::steady_clock::now();
          });
        },
        error);
  if (error.empty() && !board_watch_)
    board_watch_ = watch(
        *board_, [this](KvEntry e) { to_core([e = std::move(e)](Core& c) { c.on_board_entry(e); }); }, error);
  if (error.empty() && !watch_)
    watch_ = watch(
        *posts_, [this](KvEntry e) { to_core([e = std::move(e)](Core& c) { c.on_post_snapshot(e); }); }, error);
  if (!error.empty()) {
    view_.problem = error;
    return false;
  }
  set_up_ = true;
  log_->info("cluster {}: on NATS JetStream as {} ({} partitions, lease {} ms)", options_.group, options_.instance,
             options_.partitions, options_.lease_ms);
  return true;
}

void JetStreamCluster::Worker::cycle() {
  auto poll = milliseconds(std::clamp<std::int64_t>(options_.lease_ms / 6, 50, 1'000));
  if (!watch_ && !setup()) {
    view_.connected = false;
  } else {
    view_.connected = link_->connected();
    view_.problem.clear();
    refresh_members();
    renew_due();
    // Every consumer first, all at once (a new one takes the engine up to a second); then a
    // takeover costs a few round trips per post, with renewals between them, so taking
    // several partitions never lets the ones already held lapse.
    std::vector<std::uint32_t> to_take;
    for (auto p : view_.won)
      if (!held_.count(p)) {
        to_take.push_back(p);
        make_consumer(p);
      }
    auto wait_until = std::chrono::steady_clock::now() + poll;  // then the next cycle's renewals
    for (auto p : to_take)
      if (consumer_made(p, wait_until)) {
        hold(p);
        renew_due();
      }
    check_consumers();
  }
  if (!view_.problem.empty() && view_.problem != last_logged_problem_)
    log_->error("cluster {}: {}", options_.group, view_.problem);
  last_logged_problem_ = view_.problem;
  to_core([v = view_](Core& c) { c.on_view(v); });
  timer_.expires_after(poll);
  timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) cycle();
  });
}

void JetStreamCluster::Worker::renew_due() {
  auto now = std::chrono::steady_clock::now();
  auto third = milliseconds(options_.lease_ms / 3);
  if (now - member_put_at_ >= third) {
    auto w = members_->put(options_.instance, lease_value());
    // A put refused in a stream leader's election is tried again at the next poll; it is a
    // problem only once the key is half a lease old (the others drop us at a whole lease).
    // What we wrote ourselves makes us a member at once: we need not wait for the watch
    // to show it (it can stall for a while after a node dies, below).
    if (w)
      member_put_at_ = member_seen_[options_.instance] = now;
    else if (now - member_put_at_ >= milliseconds(options_.lease_ms / 2))
      view_.problem =
          "could not renew the member key for half a lease (the others drop this instance at a whole "
          "one): " +
          w.error;
  }
  std::vector<std::uint32_t> held;
  for (const auto& [p, h] : held_) held.push_back(p);
  for (auto p : held) {
    auto it = held_.find(p);
    if (it == held_.end()) continue;
    auto& h = it->second;
    bool won = std::find(view_.won.begin(), view_.won.end(), p) != view_.won.end();
    if (!won && !h.release_asked) {
      h.release_asked = true;  // the Core sends the final snapshot; release() follows it
      to_core([p, g = h.generation](Core& c) { c.on_release_asked(p, g); });
    }
    if (now - h.renewed_at >= third) renew(p, h);
  }
  keep_leadership();
}

void JetStreamCluster::Worker::check_consumers() {
  auto now = std::chrono::steady_clock::now();
  for (auto& [p, h] : held_) {
    if (now - h.consumer_checked_at < milliseconds(options_.lease_ms * 3)) continue;
    h.consumer_checked_at = now;
    // Replicated, it survives a node; this makes it again if it was lost all the same (a
    // purged stream, an operator's delete). Our subscription on its deliver subject stays.
    if (auto error = link_->ensure_consumer(consumer_spec(p)); !error.empty()) view_.problem = error;
  }
}

void JetStreamCluster::Worker::hold(std::uint32_t p) {
  auto sent = std::chrono::steady_clock::now();
  auto lease = leases_->create(lease_key(p), lease_value());
  if (!lease) {
    if (!lease.conflict)
      view_.problem = "could not take the lease of partition " + std::to_string(p) + ": " + lease.error;
    return;  // still held by another instance: it releases it, or its lease runs out
  }
  Held h;
  h.generation = ++next_generation_;
  h.lease_revision = lease.revision;
  h.renewed_at = sent;
  // Load each post's last snapshot and write it back under our name: the new revision
  // fences a late write of the last holder (its compare-and-set then fails).
  std::vector<KvEntry> snapshots;
  Core::Revisions revisions;
  for (auto post : partition_posts_[p]) {
    const std::string& id = catalogue_.posts()[post].id;
    std::string error;
    auto e = posts_->get(id, &error);
    KvWrite w;
    if (error.empty()) {
      if (e) {
        w = posts_->update(id, e->value, e->revision);
        snapshots.push_back(std::move(*e));
      } else {
        PostPartial empty;
        empty.post = id;
        empty.owner = options_.instance;
        empty.incarnation = incarnation_;
        KvEntry fresh{id, encode_partial(empty, catalogue_), 0, false};
        w = posts_->create(id, fresh.value);
        snapshots.push_back(std::move(fresh));
      }
      error = w.error;
    }
    if (!w) {
      view_.problem = "taking partition " + std::to_string(p) + " over: post " + id + ": " + error;
      leases_->remove(lease_key(p));
      return;
    }
    revisions.emplace_back(post, w.revision);
  }
  auto generation = h.generation;
  auto valid_until = sent + milliseconds(options_.lease_ms * 3 / 4);
  to_core([p, generation, valid_until, s = std::move(snapshots), r = std::move(revisions)](Core& c) mutable {
    c.on_taken(p, generation, valid_until, std::move(s), std::move(r));
  });
  std::string error;
  h.subscription = subscribe(p, generation, error);
  h.consumer_checked_at = std::chrono::steady_clock::now();
  if (!h.subscription) {
    to_core([p, generation, error](Core& c) { c.on_lost(p, generation, error); });
    leases_->remove(lease_key(p));
    return;
  }
  held_.emplace(p, std::move(h));
}

void JetStreamCluster::Worker::make_consumer(std::uint32_t p) {
  if (consumers_ready_.count(p) || consumers_made_.count(p) || consumers_made_.size() >= kConsumersMadeAtOnce) return;
  consumers_made_.emplace(p, std::async(std::launch::async, [link = link_.get(), spec = consumer_spec(p)] {
                            return link->ensure_consumer(spec);
                          }));
}

// Once made (or found), a durable consumer is not checked again before each takeover: a
// partition still leased to another instance would cost a round trip every poll.
// check_consumers() makes a held partition's consumer again if it is lost all the same.
bool JetStreamCluster::Worker::consumer_made(std::uint32_t p, SteadyTime deadline) {
  if (consumers_ready_.count(p)) return true;
  auto it = consumers_made_.find(p);
  if (it == consumers_made_.end()) return false;
  if (it->second.wait_until(deadline) != std::future_status::ready) return false;
  auto error = it->second.get();
  consumers_made_.erase(it);
  if (!error.empty()) {
    view_.problem = "making the consumer of partition " + std::to_string(p) + ": " + error;
    return false;
  }
  consumers_ready_.insert(p);
  return true;
}

ConsumerSpec JetStreamCluster::Worker::consumer_spec(std::uint32_t p) const {
  auto name = "postwatch-" + options_.group + "-p" + std::to_string(p);
  ConsumerSpec c;
  c.stream = std::string(partitions::events_stream);
  c.durable = name;
  c.filter_subject = partitions::partition_subjects(p);
  c.deliver_subject = partitions::deliver_subject(options_.group, p);
  c.replicas = options_.replicas;
  // What a dead holder received and had not acknowledged comes again after this: about when
  // its lease runs out and a successor subscribes.
  c.ack_wait_ms = options_.lease_ms;
  return c;
}

std::unique_ptr<NatsSubscription> JetStreamCluster::Worker::subscribe(std::uint32_t p, std::uint64_t generation,
                                                                      std::string& error) {
  auto spec = consumer_spec(p);  // made before the takeover (consumer_made)
  return link_->subscribe(
      spec.deliver_subject,
      [core = core_, &io = core_io_, p, generation](NatsMessagePtr m) {
        boost::asio::post(io, [core, p, generation, m = std::move(m)]() mutable {
          if (auto c = core.lock()) c->on_message(p, generation, std::move(m));
        });
      },
      error);
}

void JetStreamCluster::Worker::renew(std::uint32_t p, Held& h) {
  auto sent = std::chrono::steady_clock::now();
  auto w = leases_->update(lease_key(p), lease_value(), h.lease_revision);
  if (w) {
    h.lease_revision = w.revision;
    h.renewed_at = sent;
    to_core([p, g = h.generation, until = sent + milliseconds(options_.lease_ms * 3 / 4)](Core& c) {
      c.on_renewed(p, g, until);
    });
  } else if (w.conflict) {
    lose(p, h.generation, "its lease was refused: " + why_refused(lease_key(p)));
  } else if (sent - h.renewed_at >= milliseconds(options_.lease_ms * 3 / 4)) {
    lose(p, h.generation, "its lease could not be renewed in time (" + w.error + ")");
  }
}

void JetStreamCluster::Worker::lose(std::uint32_t p, std::uint64_t generation, const std::string& why) {
  auto it = held_.find(p);
  if (it == held_.end() || it->second.generation != generation) return;
  held_.erase(it);  // drains the subscription; what was not acknowledged goes to the next holder
  to_core([p, generation, why](Core& c) { c.on_lost(p, generation, why); });
}

void JetStreamCluster::Worker::release(std::uint32_t p, std::uint64_t generation) {
  auto it = held_.find(p);
  if (it == held_.end() || it->second.generation != generation) return;
  held_.erase(it);
  leases_->remove(lease_key(p));  // the winner takes it on its next poll
  to_core([p, generation](Core& c) { c.on_released(p, generation); });
}

void JetStreamCluster::Worker::stop(SnapshotJob last, std::chrono::milliseconds timeout) {
  if (!thread_.joinable()) return;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::promise<void> written, released;
  auto written_f = written.get_future(), released_f = released.get_future();
  // The last snapshots first (they queue the releases of their partitions), then whatever
  // else is held goes without one: the stream redelivers it to the next holder.
  boost::asio::post(writer_io_, [this, &last, &written] {
    if (set_up_) run_job(last);
    written.set_value();
  });
  written_f.wait_until(deadline);
  boost::asio::post(io_, [this, &released] {
    timer_.cancel();
    if (watch_) {
      std::vector<std::pair<std::uint32_t, std::uint64_t>> rest;
      for (const auto& [p, h] : held_) rest.emplace_back(p, h.generation);
      for (auto [p, g] : rest) release(p, g);
      leader_valid_until_ = SteadyTime{};  // no board after the key is gone
      if (leader_revision_ != 0) leases_->remove(kLeaderKey);
      members_->remove(options_.instance);
    }
    released.set_value();
  });
  if (released_f.wait_until(deadline) != std::future_status::ready)
    log_->warn("cluster: stopping took longer than {} ms; the others take over when the leases run out",
               timeout.count());
  guard_.reset();
  writer_guard_.reset();
  io_.stop();
  writer_io_.stop();
  thread_.join();
  writer_thread_.join();
}

}  // namespace postwatch::aggregator
