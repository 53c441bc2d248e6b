// postwatch-bench-store: the aggregator's event store at volume, no broker.
//
//   postwatch-bench-store [--events N] [--batch B] [--agents A] [--no-replay] [--queries N]
//                         [--dir DIR] [--keep] [--json FILE]
//
// 1. fill:   N events (default 10 000 000) handed to EventStore::persist() in batches of B
//            (default 100), one agent's at a time, as ingest does; committed events/s, and
//            bytes per event on disk once closed.
// 2. replay: a new EventStore replays them (decoding only), then again through BatchIngest
//            and the roll-up state, as the aggregator's start-up does: seconds per 10 million.
// 3. query:  GET /api/v1/posts/{id}/events as the API runs it: the newest 1 000 of a post
//            over 24 h (JSON's default), 10 000 (CSV's maximum), and one indicator; ms p50, max.
// Prints a table; never asserts timing (docs/performance.md).
#include "bench_events.hpp"
#include "ingest/agent_table.hpp"
#include "ingest/batch_ingest.hpp"
#include "postwatch/catalogue.hpp"
#include "rollup/indicator_state.hpp"
#include "store/event_store.hpp"

#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

using namespace postwatch;
using namespace postwatch::aggregator;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::shared_ptr<spdlog::logger> null_log() {
  return std::make_shared<spdlog::logger>("store-bench", std::make_shared<spdlog::sinks::null_sink_mt>());
}

struct Options {
  std::uint64_t events = 10'000'000;
  std::size_t batch = 100;
  std::size_t agents = 142;
  bool replay = true;
  std::size_t queries = 20;
  fs::path dir;
  bool keep = false;
  std::string json_file;
};

const char* const kUsage = R"(postwatch-bench-store — the aggregator's event store at volume

usage: postwatch-bench-store [--events N] [--batch B] [--agents A] [--no-replay] [--queries N]
                             [--dir DIR] [--keep] [--json FILE]
  --events N   events to store (default 10000000)
  --batch B    events per handed-over batch (default 100)
  --agents A   agents, one per post round-robin (default 142)
  --no-replay  skip the replay phase (for the 100-million query run)
  --queries N  history queries per kind (default 20; 0 skips the phase)
  --dir DIR    where the store goes (default: a temporary directory, removed afterwards)
  --keep       keep the store
  --json FILE  also write the figures as JSON
)";

std::uint64_t file_bytes(const fs::path& p) {
  std::error_code ec;
  auto n = fs::file_size(p, ec);
  return ec ? 0 : n;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
  return v[std::clamp<std::size_t>(rank, 1, v.size()) - 1];
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << "postwatch-bench-store: " << a << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    try {
      if (a == "--events")
        o.events = std::stoull(next());
      else if (a == "--batch")
        o.batch = std::stoul(next());
      else if (a == "--agents")
        o.agents = std::stoul(next());
      else if (a == "--no-replay")
        o.replay = false;
      else if (a == "--queries")
        o.queries = std::stoul(next());
      else if (a == "--dir")
        o.dir = next();
      else if (a == "--keep")
        o.keep = true;
      else if (a == "--json")
        o.json_file = next();
      else if (a == "-h" || a == "--help") {
        std::cout << kUsage;
        return 0;
      } else {
        std::cerr << "postwatch-bench-store: unknown argument '" << a << "' (try --help)\n";
        return 2;
      }
    } catch (const std::exception&) {
      std::cerr << "postwatch-bench-store: " << a << " needs a number\n";
      return 2;
    }
  }
  if (o.batch < 1 || o.agents < 1 || o.events < o.batch) {
    std::cerr << "postwatch-bench-store: --batch and --agents must be at least 1, --events at least --batch\n";
    return 2;
  }
  const bool temp = o.dir.empty();
  if (temp) o.dir = fs::temp_directory_path() / ("postwatch-bench-store." + std::to_string(::getpid()));
  fs::create_directories(o.dir);
  const fs::path file = o.dir / "postwatch.sqlite";
  fs::remove(file);
  fs::remove(file.string() + "-wal");

  const auto cat = IndicatorCatalogue::load(POSTWATCH_BENCH_CATALOGUE);
  bench::EventMaker maker(cat);
  nlohmann::ordered_json out;
  std::printf("postwatch-bench-store: %llu events, batch %zu, %zu agents, in %s\n",
              static_cast<unsigned long long>(o.events), o.batch, o.agents, o.dir.c_str());

  // Every event observed 10 ms after the previous one of the fleet, ending now: the newest
  // day holds 8.64 million, so the history queries read a full window.
  const std::int64_t now =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  const std::int64_t t0 = now - static_cast<std::int64_t>(o.events) * 10;
  {
    std::printf("\n1. fill\n");
    StoreOptions so{file};
    so.event_retention_ms = INT64_MAX / 4;  // keep everything, however old
    EventStore store(so, cat, null_log());
    store.start();
    std::vector<bench::BenchAgent> agents;
    for (std::size_t a = 0; a < o.agents; ++a) {
      agents.push_back(bench::bench_agent(cat, "store", a));
      store.register_agent(static_cast<std::uint32_t>(a), agents.back().post, agents.back().id);
    }
    std::vector<std::uint64_t> seq(o.agents, 0);
    std::vector<PersistedEvent> batch(o.batch);
    std::vector<IndicatorEvent> made(o.batch);
    const auto started = Clock::now();
    std::uint64_t i = 0, waits = 0;
    for (std::uint64_t b = 0; i < o.events; ++b) {
      const auto a = static_cast<std::uint32_t>(b % o.agents);
      const auto post = *cat.post_index(agents[a].post);
      const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(o.batch, o.events - i));
      batch.resize(n);
      for (std::size_t k = 0; k < n; ++k, ++i) {
        made[k] = maker.make(i, ++seq[a], t0 + static_cast<std::int64_t>(i) * 10);
        auto& e = batch[k];
        e = PersistedEvent{};
        e.agent = a;
        e.post = post;
        e.indicator = *cat.indicator_index(made[k].indicator);
        e.seq = made[k].seq;
        e.observed_at_ms = made[k].observed_at_ms;
        e.received_at_ms = t0 + static_cast<std::int64_t>(i - k + n - 1) * 10 + 50;
        e.kind = made[k].kind;
        e.number = made[k].number;
        e.text = made[k].text;
      }
      store.persist(batch);
      // What --max-store-backlog does in the aggregator: never more than 250 000 waiting.
      while (store.pending_events() > 250'000) {
        ++waits;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      if ((b & 0xFFFF) == 0 && b > 0)
        std::fprintf(stderr, "  %.0f%% (%llu events)\r", 100.0 * static_cast<double>(i) / static_cast<double>(o.events),
                     static_cast<unsigned long long>(i));
    }
    store.flush(std::chrono::hours(1));
    const double secs = since(started);
    std::fprintf(stderr, "%40s\r", "");
    const double rate = static_cast<double>(o.events) / secs;
    std::printf("  committed             %.0f events/s (%.1f s; the producer waited for the writer %llu times)\n", rate,
                secs, static_cast<unsigned long long>(waits));
    out["fill"] = {{"events", o.events}, {"batch", o.batch}, {"seconds", secs}, {"events_per_s", rate}};
  }
  {
    const double bytes = static_cast<double>(file_bytes(file) + file_bytes(file.string() + "-wal"));
    std::printf("  on disk               %.1f bytes/event (%.0f MB)\n", bytes / static_cast<double>(o.events),
                bytes / 1e6);
    out["fill"]["bytes_per_event"] = bytes / static_cast<double>(o.events);
    out["fill"]["bytes"] = bytes;
  }

  if (o.replay) {
    std::printf("\n2. replay\n");
    {
      EventStore store({file}, cat, null_log());
      std::uint64_t sum = 0;
      const auto started = Clock::now();
      const auto n = store.replay([&](const StoredEventRow& r) { sum += r.seq; });
      const double secs = since(started);
      std::printf("  decode only           %.2f s for %llu events = %.2f s per 10 million\n", secs,
                  static_cast<unsigned long long>(n), secs * 1e7 / static_cast<double>(n));
      out["replay"]["decode_per_10m_seconds"] = secs * 1e7 / static_cast<double>(n);
      if (sum == 0) std::printf("  (no events)\n");
    }
    {
      EventStore store({file}, cat, null_log());
      IndicatorState state(cat);
      AgentTable agents(cat);
      BatchIngest ingest(cat, agents, state, null_log());
      const auto started = Clock::now();
      const auto n = store.replay([&](const StoredEventRow& r) {
        ingest.replay(r.post, r.agent, replayed_event(r), r.received_at_ms, r.clock_correction_ms);
      });
      const double secs = since(started);
      std::printf(
          "  through ingest        %.2f s for %llu events = %.2f s per 10 million (the aggregator's start-up)\n", secs,
          static_cast<unsigned long long>(n), secs * 1e7 / static_cast<double>(n));
      out["replay"]["ingest_per_10m_seconds"] = secs * 1e7 / static_cast<double>(n);
      out["replay"]["events"] = n;
    }
  }

  if (o.queries > 0) {
    std::printf("\n3. history queries (GET /api/v1/posts/{id}/events)\n");
    EventStore store({file}, cat, null_log());
    struct Kind {
      const char* key;
      const char* name;
      std::size_t limit;
      bool indicator;
    };
    for (const Kind k : {Kind{"newest_1000", "newest 1000, 24 h (JSON default)", 1000, false},
                         Kind{"newest_10000", "newest 10000, 24 h (CSV maximum)", 10000, false},
                         Kind{"indicator_1000", "one indicator, newest 1000, 24 h", 1000, true}}) {
      std::vector<double> ms;
      std::size_t rows = 0;
      for (std::size_t q = 0; q < o.queries; ++q) {
        EventQuery eq;
        eq.post = cat.posts()[(q * 7) % std::min(o.agents, cat.posts().size())].id;
        eq.from_ms = now - 24LL * 3600 * 1000;
        eq.to_ms = now + 24LL * 3600 * 1000;
        eq.limit = k.limit;
        if (k.indicator) eq.indicator = cat.indicators()[q % cat.indicators().size()].id;
        const auto started = Clock::now();
        rows += store.query_events(eq).size();
        ms.push_back(since(started) * 1000);
      }
      std::printf("  %-36s p50 %.1f ms, max %.1f ms (%.0f rows per query)\n", k.name, percentile(ms, 50),
                  percentile(ms, 100), static_cast<double>(rows) / static_cast<double>(o.queries));
      out["query"][k.key] = {{"p50_ms", percentile(ms, 50)}, {"max_ms", percentile(ms, 100)}};
    }
  }

  if (!o.json_file.empty()) std::ofstream(o.json_file) << out.dump(2) << "\n";
  if (temp && !o.keep) fs::remove_all(o.dir);
  return 0;
}
