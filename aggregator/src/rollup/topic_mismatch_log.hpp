// Batches on one post's topic that claimed another post or agent (docs/aggregator.md,
// "topic_mismatch"): how many, the last few times, and which identities they claimed. The
// board keeps one per topic post to raise the alarm; a cluster instance keeps one per topic
// post to share what it saw with the leader (docs/scale-out.md). One record, so both count alike.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

namespace postwatch::aggregator {

struct TopicMismatchLog {
  static constexpr std::size_t kMaxClaimed = 8;
  std::deque<std::int64_t> at_ms;    // the last `keep` attempts
  std::vector<std::string> claimed;  // distinct "post/agent" claimed, at most kMaxClaimed
  std::uint64_t total = 0;

  void record(const std::string& claimed_identity, std::int64_t at, std::size_t keep) {
    at_ms.push_back(at);
    while (at_ms.size() > std::max<std::size_t>(keep, 1)) at_ms.pop_front();
    total += 1;
    if (claimed.size() < kMaxClaimed && std::find(claimed.begin(), claimed.end(), claimed_identity) == claimed.end())
      claimed.push_back(claimed_identity);
  }
};

}  // namespace postwatch::aggregator
