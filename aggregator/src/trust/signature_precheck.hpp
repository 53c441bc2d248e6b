// Verifies agents' batch signatures on Paho's delivery thread, in parallel with the io thread,
// while the io thread is behind (docs/aggregator.md, "Signatures off the io thread"). One
// Ed25519 verification costs 45-70 us here, most of what a signed batch costs the io thread;
// done here, the io thread only confirms that the key which verified is still the agent's and
// valid (AgentKeyRegistry::check).
//
// Threads: refresh() on the io thread copies the registry's keys into a snapshot swapped whole;
// verify() on any thread reads a snapshot. A stale snapshot costs only speed: a key it lacks
// (or one replaced since) leaves the check to the io thread.
#pragma once

#include "postwatch/verify_key.hpp"
#include "trust/agent_key_registry.hpp"

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>

namespace postwatch::aggregator {

class SignaturePrecheck {
 public:
  // io thread: takes the registry's keys when they changed and at least `min_gap_ms` passed
  // since the last copy (an enrolment flood must not copy every key per enrolment).
  void refresh(const AgentKeyRegistry& keys, std::int64_t now_ms, std::int64_t min_gap_ms = 100);
  // Any thread: the key that verified this EventBatch's signature, or null (not a signed
  // batch, a key not in the snapshot, or a signature that does not verify).
  std::shared_ptr<const VerifyKey> verify(std::span<const std::uint8_t> payload) const;

 private:
  using Snapshot = std::unordered_map<std::string, std::shared_ptr<const VerifyKey>>;
  static std::string key_of(std::string_view post, std::string_view agent, std::string_view key_id);
  mutable std::mutex mu_;  // only swaps and copies the pointer
  std::shared_ptr<const Snapshot> snapshot_ = std::make_shared<const Snapshot>();
  std::uint64_t version_ = ~std::uint64_t{0};
  std::int64_t refreshed_at_ms_ = 0;
};

}  // namespace postwatch::aggregator
