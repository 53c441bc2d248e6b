// Which agents are online: birth and death (retained, last will) on the state
// topic, self-metrics on the heartbeat topic.
#pragma once

#include "postwatch/catalogue.hpp"
#include "postwatch/event.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace spdlog {
class logger;
}

namespace postwatch::aggregator {

struct AgentPresenceRecord {
  std::string post, agent;
  bool online = false;
  std::int64_t last_state_ms = 0;      // birth or death, agent's clock
  std::int64_t last_heartbeat_ms = 0;  // our clock
  std::uint64_t births = 0;
  // From the birth; informational only: duplicates are judged by our own SeqWindow, since
  // the broker may still hold older queued events when a retained birth arrives.
  std::uint64_t first_unacked_seq = 0;
  bool awaits_confirmation = false;  // birth: it keeps events until confirmed, so it can resend them
  std::string agent_version, config_hash;
  std::uint32_t heartbeat_interval_s = 0;
  bool has_metrics = false;
  AgentMetrics metrics;
  bool heard = false;  // in AgentPresence's heard list (take_heard)
};

class AgentPresence {
 public:
  AgentPresence(const IndicatorCatalogue& catalogue, std::shared_ptr<spdlog::logger> log);

  void on_message(std::string_view topic, std::span<const std::uint8_t> payload, std::int64_t now_ms);

  // Keyed "post/agent", sorted for stable output.
  const std::map<std::string, AgentPresenceRecord, std::less<>>& agents() const { return agents_; }
  std::size_t online_count() const;
  // The agents ("post/agent" keys, valid as long as this object) with a birth or heartbeat
  // since the last call, each once: DeliveryConfirmer compares only those.
  std::vector<const std::string*> take_heard();
  std::uint64_t rejected() const { return rejected_; }

  // Called on every birth, after the record took it in ("post/agent", the record): ingest
  // learns whether the agent keeps its events until confirmed.
  std::function<void(const std::string& key, const AgentPresenceRecord& rec)> on_birth;

 private:
  const IndicatorCatalogue& catalogue_;
  std::shared_ptr<spdlog::logger> log_;
  std::map<std::string, AgentPresenceRecord, std::less<>> agents_;
  std::vector<std::pair<const std::string, AgentPresenceRecord>*> heard_;
  std::uint64_t rejected_ = 0;
};

}  // namespace postwatch::aggregator
