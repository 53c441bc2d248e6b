// What the takeover phase reads of the instances' progress: each agent's highest applied seq,
// and how long each partition's stood still.
#pragma once

#include "cluster_bench_aggregators.hpp"
#include "postwatch/event_partitions.hpp"

#include <algorithm>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace postwatch::bench {

// Every agent's highest seq as instance i has it ("post/agent" -> seq); empty when it did not answer.
inline std::map<std::string, std::uint64_t> highest_seqs(AggregatorGroup& aggs, std::size_t i) {
  std::map<std::string, std::uint64_t> out;
  auto a = aggs.get(i, "/api/v1/agents");
  if (!a.is_object()) return out;
  for (const auto& x : a["agents"])
    if (x.contains("events") && x["events"].is_object())
      out[x.value("id", "")] = x["events"].value("highest_seq", std::uint64_t{0});
  return out;
}

// Per partition, the longest time its applied seqs stood still: the sum of its agents' highest
// seqs, the largest any instance shows (the holder's is live, the others' from snapshots).
class PartitionStalls {
 public:
  PartitionStalls(const std::vector<BenchAgent>& agents, std::uint32_t partitions, Clock::time_point from) {
    for (const auto& a : agents)
      agents_of_[partitions::partition_of(a.post, partitions)].push_back(a.post + "/" + a.id);
    for (const auto& [p, ids] : agents_of_) progress_[p].since = from;
  }
  void poll(AggregatorGroup& aggs) {
    std::map<std::uint32_t, std::uint64_t> mark;
    for (std::size_t i = 0; i < aggs.size(); ++i) {
      auto seqs = highest_seqs(aggs, i);
      for (const auto& [p, ids] : agents_of_) {
        std::uint64_t sum = 0;
        for (const auto& id : ids)
          if (auto it = seqs.find(id); it != seqs.end()) sum += it->second;
        mark[p] = std::max(mark[p], sum);
      }
    }
    const auto now = Clock::now();
    for (auto& [p, g] : progress_)
      if (mark[p] > g.mark) {
        g.longest_s = std::max(g.longest_s, seconds_between(g.since, now));
        g.mark = mark[p], g.since = now;
      }
  }
  // The longest stall among `in` (or among the others), a stall still going counted to now.
  double longest(const std::set<std::uint32_t>& moved, bool in) const {
    double out = 0;
    const auto now = Clock::now();
    for (const auto& [p, g] : progress_)
      if (moved.count(p) == static_cast<std::size_t>(in))
        out = std::max({out, g.longest_s, seconds_between(g.since, now)});
    return out;
  }

 private:
  struct Progress {
    std::uint64_t mark = 0;
    Clock::time_point since{};
    double longest_s = 0;
  };
  std::map<std::uint32_t, std::vector<std::string>> agents_of_;
  std::map<std::uint32_t, Progress> progress_;
};

}  // namespace postwatch::bench
