// postwatch-bench-ingest's input: the catalogue, a silent logger, and pre-encoded messages
// (plain, and signed with the registry that trusts their key), made once per batch size.
#pragma once

#include "postwatch/catalogue.hpp"
#include "trust/agent_key_registry.hpp"

#include <spdlog/spdlog.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace postwatch::bench {

// catalogue/gbvs.json of the source tree (POSTWATCH_BENCH_CATALOGUE).
const IndicatorCatalogue& catalogue();
std::shared_ptr<spdlog::logger> null_log();

// Pre-encoded messages: one agent per catalogue post, each agent's seqs dense and
// rising, observed times rising so every reading replaces the last. A fresh
// BatchIngest sees every event of a pass as new.
struct Message {
  std::string topic;
  std::vector<std::uint8_t> payload;
};
struct Pool {
  std::vector<Message> messages;
  std::int64_t now_ms = 0;  // on_message's clock: after every observed time, within the lateness
};
const Pool& pool(std::size_t batch);

// The same messages, each signed by its agent (one key for all, each agent enrolled with it).
struct SignedPool {
  Pool pool;
  aggregator::AgentKeyRegistry keys;
};
const SignedPool& signed_pool(std::size_t batch);

}  // namespace postwatch::bench
