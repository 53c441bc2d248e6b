// Which agents are online: birth and death (retained, last will) on the state
// topic, self-metrics on the heartbeat topic. Kept in each agent's AgentRecord.
#pragma once

#include "ingest/agent_table.hpp"
#include "postwatch/catalogue.hpp"
#include "trust/agent_key_registry.hpp"

#include <array>
#include <functional>

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

namespace spdlog {
class logger;
}

namespace postwatch::aggregator {

class AgentPresence {
 public:
  AgentPresence(const IndicatorCatalogue& catalogue, AgentTable& agents, std::shared_ptr<spdlog::logger> log,
                ClockPolicy clock = {});

  void on_message(std::string_view topic, std::span<const std::uint8_t> payload, std::int64_t now_ms);

  std::size_t online_count() const { return online_; }
  std::size_t known_count() const { return known_; }  // agents that sent a birth, death or heartbeat
  std::uint64_t rejected() const { return rejected_; }
  // Clustered on NATS, a broker's PUBACK does not mean stored (docs/scale-out.md): an agent
  // that releases its events on it is warned about at each birth.
  void warn_on_broker_confirm(bool on) { warn_broker_confirm_ = on; }
  // Births, deaths and heartbeats are verified as batches are (docs/security.md); null: not.
  void set_keys(const AgentKeyRegistry* keys) { keys_ = keys; }
  // Refused by their signature, by reason (as IngestCounters::batches_refused_signature).
  const std::array<std::uint64_t, kSignatureRefusals>& refused_signature() const { return refused_signature_; }
  std::function<void(SignatureVerdict verdict, std::string_view topic_post, std::string_view agent)>
      on_signature_refused;

 private:
  const IndicatorCatalogue& catalogue_;
  AgentTable& agents_;
  std::shared_ptr<spdlog::logger> log_;
  ClockPolicy clock_;
  std::size_t online_ = 0, known_ = 0;
  std::uint64_t rejected_ = 0, broker_confirm_births_ = 0;
  bool warn_broker_confirm_ = false;
  const AgentKeyRegistry* keys_ = nullptr;
  std::array<std::uint64_t, kSignatureRefusals> refused_signature_{};
};

}  // namespace postwatch::aggregator
