#include "ingest_bench_messages.hpp"

#include "bench_events.hpp"

#include <spdlog/sinks/null_sink.h>

#include <algorithm>
#include <map>
#include <utility>

#ifndef POSTWATCH_BENCH_CATALOGUE
#define POSTWATCH_BENCH_CATALOGUE "catalogue/gbvs.json"
#endif

namespace postwatch::bench {

const IndicatorCatalogue& catalogue() {
  static const IndicatorCatalogue c = IndicatorCatalogue::load(POSTWATCH_BENCH_CATALOGUE);
  return c;
}

std::shared_ptr<spdlog::logger> null_log() {
  static auto log = std::make_shared<spdlog::logger>("bench", std::make_shared<spdlog::sinks::null_sink_mt>());
  return log;
}

const Pool& pool(std::size_t batch) {
  static std::map<std::size_t, Pool> pools;
  auto it = pools.find(batch);
  if (it != pools.end()) return it->second;
  const auto& cat = catalogue();
  EventMaker maker(cat);
  const std::size_t agents = cat.posts().size();
  const std::size_t messages = std::max<std::size_t>(262144 / batch, 2 * agents);
  const std::int64_t t0 = 1'700'000'000'000;
  Pool p;
  p.now_ms = t0 + 120'000;
  std::vector<BenchAgent> ag;
  for (std::size_t a = 0; a < agents; ++a) ag.push_back(bench_agent(cat, "bench", a));
  std::uint64_t stream = 0;
  for (std::size_t m = 0; m < messages; ++m) {
    const std::size_t a = m % agents;
    const std::uint64_t first_seq = (m / agents) * batch + 1;
    // Observed times rise by 1 ms every 4 events: 256 Ki events span ~65 s.
    p.messages.push_back({ag[a].topic, encode_bench_batch(maker, ag[a], batch, first_seq, stream,
                                                          t0 + static_cast<std::int64_t>(stream / 4), t0)});
    stream += batch;
  }
  return pools.emplace(batch, std::move(p)).first->second;
}

const SignedPool& signed_pool(std::size_t batch) {
  static std::map<std::size_t, SignedPool> pools;
  auto it = pools.find(batch);
  if (it != pools.end()) return it->second;
  static const SigningKey key = SigningKey::generate();
  SignedPool sp;
  sp.pool.now_ms = pool(batch).now_ms;
  for (const auto& m : pool(batch).messages) {
    EventBatch b;
    decode_batch(m.payload, b);
    if (!sp.keys.in_force(b.post_id, b.agent_id))
      sp.keys.add({b.post_id, b.agent_id, key.key_id(), key.public_key(), 1, 0, "bench"});
    sp.pool.messages.push_back({m.topic, encode_batch(b, &key)});
  }
  return pools.emplace(batch, std::move(sp)).first->second;
}

}  // namespace postwatch::bench
