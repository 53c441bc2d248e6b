// One aggregator instance's part in a cluster (docs/scale-out.md). Posts are owned by one
// instance at a time (rendezvous hashing over the live members) and backed up by a
// second one that buffers their events until the owner's partial covers them. Owners
// publish each post's state as a retained partial; every instance merges all partials
// into its IndicatorState, so the API, stream and dashboard serve the global state.
// Runs on the io_context only.
#pragma once

#include "cluster/partition_map.hpp"
#include "cluster/post_partial.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace spdlog {
class logger;
}

namespace postwatch::aggregator {

struct ClusterOptions {
  std::string group;     // instances with the same group share the posts
  std::string instance;  // stable and unique within the group
  std::int64_t partial_interval_ms = 500;
  // A post waits this long for its old owner's release before it is taken over anyway.
  std::int64_t release_timeout_ms = 10'000;
  std::size_t max_buffered_messages = 500'000;  // a backup's buffer; the oldest go first
};

struct ClusterHooks {
  std::function<void(const std::vector<std::string>& add, const std::vector<std::string>& remove,
                     std::function<void(bool granted)> done)>
      change_filters;
  std::function<bool(const std::string& topic, const std::string& payload)> publish_retained;
  // An events message for a post this instance owns: through BatchIngest into the state.
  std::function<void(const std::string& topic, const std::string& payload, std::int64_t received_ms)> apply;
  // After taking a post over: this instance's stored events of the post, through dedupe.
  std::function<void(std::uint32_t post)> replay_local;
};

struct ClusterCounters {
  std::uint64_t takeovers = 0, forced_takeovers = 0, releases = 0;
  std::uint64_t partials_published = 0, partials_merged = 0, partials_refused = 0;
  std::uint64_t messages_buffered = 0, buffer_overflow_drops = 0, messages_not_ours = 0;
  std::uint64_t buffered_replayed = 0;
};

class ClusterMember {
 public:
  ClusterMember(const IndicatorCatalogue& catalogue, IndicatorState& state, BatchIngest& ingest, ClusterOptions options,
                ClusterHooks hooks, std::shared_ptr<spdlog::logger> log);

  // Topics: postwatch/v1/cluster/<group>/{members,partials}/<id>.
  std::string member_topic() const;
  std::string offline_record() const;  // our last will
  std::vector<std::string> cluster_filters() const;
  bool is_cluster_topic(const std::string& topic) const;

  void on_subscribed(std::int64_t now_ms);  // (re)connected and subscribed: announce ourselves
  void on_cluster_message(const std::string& topic, const std::string& payload, std::int64_t now_ms);
  void on_events(std::uint32_t post, const std::string& topic, const std::string& payload, std::int64_t now_ms);
  void tick(std::int64_t now_ms);
  // Graceful stop: publish every owned post's partial, then leave the member list.
  void leave(std::int64_t now_ms);

  // Member of the current view, subscriptions for it granted, no post waiting for takeover.
  bool ready() const;
  // Publishes the global goal feed over MQTT (one instance does).
  bool leader() const;
  // Whether this instance applies the post's events now (its owner).
  bool owns(std::uint32_t post) const;
  const ClusterCounters& counters() const { return counters_; }
  nlohmann::json status_json() const;

 private:
  enum class Role { None, Backup, Pending, Owner };
  struct Buffered {
    std::string topic, payload, agent;
    std::uint64_t highest_seq = 0;
    std::int64_t received_ms = 0;
  };
  struct Slot {
    Role role = Role::None;
    bool filter = false;   // subscribed (or asked to be) to the post's events
    bool granted = false;  // the broker confirmed that subscription
    bool dirty = false;
    std::int64_t last_publish_ms = 0;
    std::int64_t pending_since_ms = 0;
    std::deque<Buffered> buffer;
    bool have_partial = false;  // the latest partial seen for the post, from anyone
    std::string p_owner, p_incarnation, p_released_for;
  };

  std::string events_filter(std::uint32_t post) const;
  void publish_record();
  void recompute(std::int64_t now_ms);
  void sync_filters();
  void try_take_over(std::uint32_t post, std::int64_t now_ms);
  void take_over(std::uint32_t post, std::int64_t now_ms, bool forced);
  void release_ready_posts(std::int64_t now_ms);
  void publish_partial(std::uint32_t post, std::int64_t now_ms, const std::string& released_for);
  void trim(Slot& slot, const PostPartial& p);
  bool self_member() const;

  const IndicatorCatalogue& catalogue_;
  IndicatorState& state_;
  BatchIngest& ingest_;
  ClusterOptions options_;
  ClusterHooks hooks_;
  std::shared_ptr<spdlog::logger> log_;
  std::string incarnation_;
  std::int64_t started_at_ms_ = 0;
  std::string prefix_;  // postwatch/v1/cluster/<group>/
  std::map<std::string, ClusterMemberInfo> records_;
  PartitionMap view_;
  std::string ready_view_;
  std::uint64_t filter_generation_ = 0;
  std::vector<Slot> slots_;
  std::uint64_t version_ = 0;
  std::size_t buffered_ = 0;
  BatchView scratch_;
  ClusterCounters counters_;
};

}  // namespace postwatch::aggregator
