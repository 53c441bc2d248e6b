// What the tests of a cluster on NATS JetStream share (docs/scale-out.md): an instance's
// cluster options, the wait for a group to settle, the global state instances must agree on,
// and the board images a group's leaders write.
#pragma once

#include "cluster/nats_link.hpp"
#include "support/aggregator_process.hpp"
#include "support/nats_cluster.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace postwatch::test {

// A sanitizer build runs several times slower: a 2 s lease lapses under the fleet's load there
// and partitions move between the instances that should keep them.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr const char* kLeaseMs = "6000";
#else
inline constexpr const char* kLeaseMs = "2000";
#endif

// With `shared_keys`, the instance signs with the key the cluster's instances share (made with
// the NatsCluster), as an operator provisions them; without, it makes its own in its data dir.
inline std::vector<std::string> cluster_args(const NatsCluster& nats, const std::string& instance,
                                             bool shared_keys = true) {
  std::vector<std::string> a = {"--cluster-group", "ops", "--instance-id", instance, "--nats", nats.servers(),
                                "--nats-replicas", "3",   "--lease-ms",    kLeaseMs};
  if (shared_keys) a.insert(a.end(), {"--keys-dir", nats.keys_dir()});
  return a;
}

// Every instance a member, holding every partition it wins, and all of them held once.
inline bool cluster_settled(const std::vector<AggregatorProcess*>& aggs, unsigned partitions) {
  std::set<unsigned> held;
  std::size_t count = 0;
  for (auto* a : aggs) {
    auto c = a->get("/api/v1/cluster");
    if (!c.is_object() || !c["ready"].get<bool>() || c["members"].size() != aggs.size()) return false;
    for (const auto& p : c["partitions"]["held"]) held.insert(p.get<unsigned>()), ++count;
  }
  return held.size() == partitions && count == partitions;
}

// Waits for cluster_settled; a failure says what each instance held and the end of its log,
// since an ASSERT on it returns before the test's own report.
inline ::testing::AssertionResult settles(const std::vector<AggregatorProcess*>& aggs, unsigned partitions,
                                          std::chrono::milliseconds within) {
  if (wait_until([&] { return cluster_settled(aggs, partitions); }, within)) return ::testing::AssertionSuccess();
  auto r = ::testing::AssertionFailure();
  r << aggs.size() << " instance(s) not settled on " << partitions << " partitions within " << within.count() << " ms";
  for (auto* a : aggs) {
    auto log = a->process().log();
    r << "\n--- instance on port " << a->port() << (a->process().running() ? "" : " (exited)") << ": /api/v1/cluster "
      << a->get("/api/v1/cluster").dump() << "\n... last lines:\n"
      << log.substr(log.size() > 6000 ? log.size() - 6000 : 0);
  }
  return r;
}

// The global state every instance must agree on: each goal's raw status and score, each
// agent's event count and highest seq.
inline nlohmann::json board(AggregatorProcess& agg) {
  nlohmann::json v;
  auto goals = agg.get("/api/v1/goals");
  auto agents = agg.get("/api/v1/agents");
  if (!goals.is_object() || !agents.is_object()) return nullptr;
  for (const auto& g : goals["goals"]) v["goals"][std::to_string(g["id"].get<int>())] = {g["raw_status"], g["score"]};
  for (const auto& a : agents["agents"])
    if (a["events"].is_object())
      v["agents"][a["id"].get<std::string>()] = {a["events"]["received"], a["events"]["highest_seq"]};
  return v;
}

inline std::uint64_t events_received(const nlohmann::json& b) {
  std::uint64_t n = 0;
  if (b.is_object() && b.contains("agents"))
    for (const auto& [id, a] : b["agents"].items()) n += a[0].get<std::uint64_t>();
  return n;
}

// Every board image a group's leaders write, as the group's board bucket stores them, in order
// (docs/scale-out.md, "One board"): what the instances read, whichever instance wrote it.
class BoardImages {
 public:
  BoardImages(const NatsCluster& nats, const std::string& group) {
    link_ = std::make_unique<aggregator::NatsLink>(
        aggregator::NatsLinkOptions{nats.server_urls(), "board-images", "", "", 5'000});
    std::string error;
    bucket_ = link_->bucket("postwatch-" + group + "-board", 0, 3, error);
    if (bucket_)
      watch_ = bucket_->watch_all(
          [this](aggregator::KvEntry e) {
            if (e.key != "board" || e.deleted) return;
            std::lock_guard lock(mutex_);
            images_.push_back(nlohmann::json::parse(e.value, nullptr, false));
          },
          &error);
    if (!watch_) throw std::runtime_error("watching the board of group " + group + ": " + error);
  }
  std::vector<nlohmann::json> images() const {
    std::lock_guard lock(mutex_);
    return images_;
  }

 private:
  // Before the watch: members go in reverse order, and the watch's thread writes these until
  // the watch is gone (TSan saw the vector destroyed under a running watch).
  mutable std::mutex mutex_;
  std::vector<nlohmann::json> images_;
  std::unique_ptr<aggregator::NatsLink> link_;
  std::unique_ptr<aggregator::KvBucket> bucket_;
  std::unique_ptr<aggregator::KvBucket::Watch> watch_;
};

}  // namespace postwatch::test
