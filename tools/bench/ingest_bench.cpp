// postwatch-bench-ingest: the aggregator's per-event CPU cost without a broker.
// Google Benchmark; every figure is ns per event (items_per_second = events/s)
// except the roll-up, which is per compute. See tools/bench/README.md.
//
//   BM_Memcpy/<batch>             copying the payload once: the floor
//   BM_Decode/<batch>             decode_batch (verify + BatchView), nothing else
//   BM_Ingest/<batch>/<sink>      BatchIngest::on_message: topic, verify, dedupe,
//                                 catalogue checks, IndicatorState update;
//                                 sink 0 = none, 1 = counting EventSink, 2 = EventStore
//   BM_StorePersist/<batch>       EventStore::persist() alone (the handover to SQLite)
//   BM_IngestLatencyHook/<batch>  as sink 0, plus the on_applied_latency callback
//                                 (only when BatchIngest has it)
//   BM_Verify/<batch>             decode_batch + AgentKeyRegistry::check of a signed
//                                 batch (Ed25519): the signature's cost alone
//   BM_VerifyOpenSsl/<batch>      as BM_Verify with OpenSSL's Ed25519 instead of libsodium's
//                                 (what the agents use): the baseline for BM_Verify
//   BM_IngestSigned/<batch>       as BM_Ingest/<batch>/0 with every batch signed and
//                                 verified (docs/security.md): compare the two
//   BM_Rollup/<posts>             GoalRollup::compute, real catalogue, every
//                                 indicator reported at <posts> posts
#include "ingest_bench_messages.hpp"

#include "bench_events.hpp"
#include "ingest/batch_ingest.hpp"
#include "postwatch/verify_key.hpp"
#include "rollup/goal_rollup.hpp"
#include "rollup/indicator_state.hpp"
#include "store/event_store.hpp"
#include "trust/agent_key_registry.hpp"

#include <benchmark/benchmark.h>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace {
using namespace postwatch;
using namespace postwatch::aggregator;
namespace fs = std::filesystem;

using bench::catalogue;
using bench::null_log;
using bench::pool;
using bench::signed_pool;

void set_items(benchmark::State& state, std::size_t batch) {
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(batch));
  state.counters["batch"] = static_cast<double>(batch);
}

// ------------------------------------------------------------------ floor

void BM_Memcpy(benchmark::State& state) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  const auto& p = pool(batch);
  std::vector<std::uint8_t> buf(1 << 20);
  std::size_t i = 0, bytes = 0;
  for (auto _ : state) {
    const auto& m = p.messages[i];
    if (++i == p.messages.size()) i = 0;
    std::memcpy(buf.data(), m.payload.data(), m.payload.size());
    benchmark::DoNotOptimize(buf.data());
    benchmark::ClobberMemory();
    bytes += m.payload.size();
  }
  set_items(state, batch);
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
  state.counters["payload_bytes"] = static_cast<double>(p.messages.front().payload.size());
}

// ------------------------------------------------------------------ decode only

void BM_Decode(benchmark::State& state) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  const auto& p = pool(batch);
  BatchView view;
  std::size_t i = 0, bytes = 0;
  for (auto _ : state) {
    const auto& m = p.messages[i];
    if (++i == p.messages.size()) i = 0;
    auto err = decode_batch(m.payload, view);
    benchmark::DoNotOptimize(err);
    benchmark::DoNotOptimize(view.events.data());
    bytes += m.payload.size();
  }
  if (decode_batch(p.messages.front().payload, view) != DecodeError::None) state.SkipWithError("payload refused");
  set_items(state, batch);
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
}

// ------------------------------------------------------------------ full ingest

class CountingSink final : public EventSink {
 public:
  void register_agent(std::uint32_t, std::string_view, std::string_view) override { ++agents; }
  void persist(std::span<const PersistedEvent> events) override {
    calls += 1;
    events_seen += events.size();
    if (!events.empty()) last_seq = events.back().seq;
  }
  std::uint64_t agents = 0, calls = 0, events_seen = 0, last_seq = 0;
};

enum SinkKind : int { kNoSink = 0, kCountingSink = 1, kEventStore = 2 };

struct TempFile {
  TempFile() {
    dir = fs::temp_directory_path() / ("pw-bench-ingest-" + std::to_string(::getpid()) + "-" + std::to_string(++n));
    fs::create_directories(dir);
  }
  ~TempFile() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  fs::path dir;
  static inline int n = 0;
};

// The latency callback a colleague's /metrics work adds to BatchIngest; compiled in
// only when the member exists, so this file builds against either version.
template <typename T>
concept HasLatencyHook = requires(T& t) {
  t.on_applied_latency;
};

template <typename I>
void set_latency_hook(I& ingest, std::uint64_t& calls) {
  if constexpr (HasLatencyHook<I>) ingest.on_applied_latency = [&calls](std::int64_t ms) { calls += ms >= 0; };
}

// How far the writer thread (on the other core) lagged when the loop ended, and how fast it
// then committed that backlog with nothing else running: SQLite's insert rate here.
void report_store_drain(benchmark::State& state, EventStore& store) {
  const auto backlog = store.pending_events();
  const auto t0 = std::chrono::steady_clock::now();
  store.flush(std::chrono::seconds(120));
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  state.counters["store_backlog_at_end"] = static_cast<double>(backlog);
  if (backlog > 10000) state.counters["store_drain_events_per_s"] = static_cast<double>(backlog) / s;
}

template <bool kHook>
void run_ingest(benchmark::State& state, std::size_t batch, SinkKind sink_kind, bool signed_batches = false) {
  const auto& cat = catalogue();
  const auto& p = signed_batches ? signed_pool(batch).pool : pool(batch);
  CountingSink counting;
  std::unique_ptr<TempFile> tmp;
  std::unique_ptr<EventStore> store;
  EventSink* sink = nullptr;
  if (sink_kind == kCountingSink) sink = &counting;
  if (sink_kind == kEventStore) {
    tmp = std::make_unique<TempFile>();
    store = std::make_unique<EventStore>(StoreOptions{tmp->dir / "postwatch.sqlite"}, cat, null_log());
    store->start();
    sink = store.get();
  }
  std::unique_ptr<IndicatorState> st;
  std::unique_ptr<AgentTable> agents;
  std::unique_ptr<BatchIngest> ingest;
  std::uint64_t hook_calls = 0;
  auto reset = [&] {
    ingest.reset();
    st = std::make_unique<IndicatorState>(cat);
    agents = std::make_unique<AgentTable>(cat);
    ingest = std::make_unique<BatchIngest>(cat, *agents, *st, null_log(), IngestPolicy{}, sink);
    if (signed_batches) ingest->set_keys(&signed_pool(batch).keys);
    if constexpr (kHook) set_latency_hook(*ingest, hook_calls);
  };
  reset();
  std::size_t i = 0;
  std::uint64_t applied = 0, offered = 0, passes = 0;
  for (auto _ : state) {
    if (i == p.messages.size()) {
      // A new pass over the pool: new state, so every seq is new again. Once per
      // 256 Ki events, so the pause costs nothing measurable.
      state.PauseTiming();
      reset();
      i = 0;
      ++passes;
      state.ResumeTiming();
    }
    const auto& m = p.messages[i++];
    applied += ingest->on_message(m.topic, m.payload, p.now_ms);
    offered += batch;
  }
  if (applied != offered) state.SkipWithError("not every event was applied: check the generator");
  if (kHook && hook_calls != applied) state.SkipWithError("the latency hook was not called once per event");
  set_items(state, batch);
  state.counters["passes"] = static_cast<double>(passes);
  if (sink_kind == kCountingSink)
    state.counters["persist_calls"] = benchmark::Counter(static_cast<double>(counting.calls));
  if (store) report_store_drain(state, *store);
  ingest.reset();
}

void BM_Ingest(benchmark::State& state) {
  run_ingest<false>(state, static_cast<std::size_t>(state.range(0)), static_cast<SinkKind>(state.range(1)));
}

void BM_IngestSigned(benchmark::State& state) {
  run_ingest<false>(state, static_cast<std::size_t>(state.range(0)), kNoSink, true);
}

void BM_Verify(benchmark::State& state) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  const auto& sp = signed_pool(batch);
  BatchView view;
  std::size_t i = 0, refused_count = 0;
  for (auto _ : state) {
    const auto& m = sp.pool.messages[i];
    if (++i == sp.pool.messages.size()) i = 0;
    decode_batch(m.payload, view);
    auto verdict =
        sp.keys.check(view.post_id, view.agent_id, view.key_id, m.payload, view.signature_offset, sp.pool.now_ms);
    refused_count += verdict != SignatureVerdict::Signed;
  }
  if (refused_count) state.SkipWithError("a signed batch did not verify");
  set_items(state, batch);
  state.counters["payload_bytes"] = static_cast<double>(sp.pool.messages.front().payload.size());
}

// The same batches checked by OpenSSL, each agent's key object made once as add() does.
void BM_VerifyOpenSsl(benchmark::State& state) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  const auto& sp = signed_pool(batch);
  std::map<std::string, VerifyKey, std::less<>> openssl;
  BatchView view;
  for (const auto& m : sp.pool.messages) {
    decode_batch(m.payload, view);
    if (const auto* k = sp.keys.find(view.post_id, view.agent_id, view.key_id))
      openssl.try_emplace(std::string(view.key_id), k->key);
  }
  std::size_t i = 0, refused_count = 0;
  for (auto _ : state) {
    const auto& m = sp.pool.messages[i];
    if (++i == sp.pool.messages.size()) i = 0;
    decode_batch(m.payload, view);
    auto it = openssl.find(view.key_id);
    refused_count += it == openssl.end() || !it->second.verify_payload(m.payload, view.signature_offset);
  }
  if (refused_count) state.SkipWithError("a signed batch did not verify");
  set_items(state, batch);
}

void BM_IngestLatencyHook(benchmark::State& state) {
  if constexpr (HasLatencyHook<BatchIngest>) {
    run_ingest<true>(state, static_cast<std::size_t>(state.range(0)), kNoSink);
  } else {
    for (auto _ : state) {
    }
    state.SkipWithError("this BatchIngest has no on_applied_latency");
  }
}

// The handover alone: EventStore::persist() of ready PersistedEvents, its writer thread
// committing on the other core. What BM_Ingest/sink:2 adds over sink:1, without ingest.
void BM_StorePersist(benchmark::State& state) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  const auto& cat = catalogue();
  TempFile tmp;
  EventStore store(StoreOptions{tmp.dir / "postwatch.sqlite"}, cat, null_log());
  const auto post = *cat.post_index("bamako");
  store.register_agent(0, "bamako", "bench-0");
  store.start();
  std::vector<PersistedEvent> events(batch);
  std::vector<std::uint32_t> numeric;  // the indicators on the board
  for (std::uint32_t i = 0; i < cat.indicators().size(); ++i)
    if (cat.indicators()[i].on_board()) numeric.push_back(i);
  for (std::size_t k = 0; k < batch; ++k) {
    events[k].post = post;
    events[k].indicator = numeric[k % numeric.size()];
    events[k].observed_at_ms = events[k].received_at_ms = 1'700'000'000'000;
    events[k].kind = cat.indicators()[events[k].indicator].kind;
    events[k].number = 1;
  }
  std::uint64_t seq = 0;
  std::int64_t worst_ns = 0;  // the longest single persist(): the io thread blocked on the store
  for (auto _ : state) {
    for (auto& e : events) e.seq = ++seq;
    const auto t0 = std::chrono::steady_clock::now();
    store.persist(events);
    worst_ns = std::max<std::int64_t>(
        worst_ns, std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count());
  }
  set_items(state, batch);
  state.counters["persist_max_us"] = static_cast<double>(worst_ns) / 1000;
  report_store_drain(state, store);
}

// ------------------------------------------------------------------ roll-up

void BM_Rollup(benchmark::State& state) {
  const auto& cat = catalogue();
  const auto posts = std::min<std::size_t>(static_cast<std::size_t>(state.range(0)), cat.posts().size());
  bench::EventMaker maker(cat);
  IndicatorState st(cat);
  const std::int64_t now = 1'700'000'000'000;
  std::uint64_t i = 0;
  // Every indicator at every reporting post, counts with several readings in their window.
  for (std::uint32_t post = 0; post < posts; ++post) {
    const auto& inds = maker.indicators();
    for (std::uint32_t k = 0; k < inds.size(); ++k) {
      const std::uint32_t ind = inds[k];
      for (int r = 0; r < (cat.indicators()[ind].kind == ValueKind::Count ? 5 : 1); ++r) {
        auto ev = maker.make(k + inds.size() * (post + r), ++i, now - 60'000 * (r + 1));
        EventView v{ev.seq, ev.observed_at_ms, ev.indicator, ev.kind, ev.number, ev.text, ev.note};
        st.apply(post, ind, v, now - 1000);
      }
    }
    st.touch(post, now - 1000);
  }
  GoalRollup rollup(cat);
  std::vector<bool> silent(cat.posts().size(), false);
  auto previous = rollup.compute(st, now, silent).cells;
  for (auto _ : state) {
    auto snap = rollup.compute(st, now, silent, previous);
    benchmark::DoNotOptimize(snap.goals.data());
    previous.swap(snap.cells);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));  // computes/s
  state.counters["posts"] = static_cast<double>(posts);
  state.counters["indicators"] = static_cast<double>(cat.indicators().size());
}

const std::vector<std::int64_t> kBatches{1, 10, 100, 500};

void batch_args(benchmark::internal::Benchmark* b) {
  b->ArgName("batch");
  for (auto n : kBatches) b->Arg(n);
}

void ingest_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"batch", "sink"});
  for (auto sink : {kNoSink, kCountingSink})
    for (auto n : kBatches) b->Args({n, sink});
}

void store_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"batch", "sink"});
  for (auto n : kBatches) b->Args({n, kEventStore});
}

}  // namespace

BENCHMARK(BM_Memcpy)->Apply(batch_args);
BENCHMARK(BM_Decode)->Apply(batch_args);
BENCHMARK(BM_Ingest)->Apply(ingest_args);
// Real time: with the EventStore a writer thread works on the other core, and the
// handover (mutex, copy, page faults of the growing queue) is what the io thread pays.
BENCHMARK(BM_Ingest)->Apply(store_args)->UseRealTime();
BENCHMARK(BM_StorePersist)->Apply(batch_args)->UseRealTime();
BENCHMARK(BM_IngestLatencyHook)->Apply(batch_args);
BENCHMARK(BM_VerifyOpenSsl)->Apply(batch_args);
BENCHMARK(BM_Verify)->Apply(batch_args);
BENCHMARK(BM_IngestSigned)->Apply(batch_args);
BENCHMARK(BM_Rollup)->ArgName("posts")->Arg(20)->Arg(142)->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
