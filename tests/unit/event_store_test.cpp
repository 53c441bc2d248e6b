// The store's batch records: the codec, damage found at start-up, a WAL cut by a power
// loss, retention, and the event history's order (docs/aggregator.md, "The store").
#include "store/event_store.hpp"
#include "postwatch/clock.hpp"
#include "store/store_reader.hpp"
#include "store/stored_batch.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>

using namespace postwatch;
using namespace postwatch::aggregator;
using namespace std::chrono_literals;

namespace {

std::shared_ptr<spdlog::logger> quiet() {
  return std::make_shared<spdlog::logger>("q", std::make_shared<spdlog::sinks::null_sink_mt>());
}

const IndicatorCatalogue& catalogue() { return test::shipped_catalogue(); }

constexpr std::int64_t kDayMs = 24LL * 3600 * 1000;

PersistedEvent event(std::uint32_t agent, std::uint64_t seq, std::int64_t observed, std::int64_t received) {
  PersistedEvent e;
  e.agent = agent;
  e.post = *catalogue().post_index("bamako");
  e.indicator = *catalogue().indicator_index("terrorism_threat_level");
  e.seq = seq;
  e.observed_at_ms = observed;
  e.received_at_ms = received;
  e.number = 2;
  return e;
}

// `n` events of one agent, seqs from `first`, in one handover.
void persist_run(EventStore& store, std::uint32_t agent, std::uint64_t first, int n, std::int64_t received) {
  std::vector<PersistedEvent> events;
  for (int i = 0; i < n; ++i)
    events.push_back(event(agent, first + static_cast<std::uint64_t>(i), received - 1000 + i, received));
  store.persist(events);
}

std::uint64_t replayed(const StoreOptions& opt, std::vector<StoredEventRow>* rows = nullptr) {
  EventStore store(opt, catalogue(), quiet());
  return store.replay([&](const StoredEventRow& r) {
    if (rows) rows->push_back(r);
  });
}

// Flips one bit of the body of the record whose first seq is `first_seq`, as a bad sector would.
void flip_a_bit(const std::filesystem::path& file, std::uint64_t first_seq) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(file.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* q = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT body FROM event_batches WHERE first_seq = ?", -1, &q, nullptr), SQLITE_OK);
  sqlite3_bind_int64(q, 1, static_cast<sqlite3_int64>(first_seq));
  ASSERT_EQ(sqlite3_step(q), SQLITE_ROW);
  std::string body(static_cast<const char*>(sqlite3_column_blob(q, 0)),
                   static_cast<std::size_t>(sqlite3_column_bytes(q, 0)));
  sqlite3_finalize(q);
  body[body.size() / 2] = static_cast<char>(body[body.size() / 2] ^ 0x04);
  ASSERT_EQ(sqlite3_prepare_v2(db, "UPDATE event_batches SET body = ? WHERE first_seq = ?", -1, &q, nullptr),
            SQLITE_OK);
  sqlite3_bind_blob(q, 1, body.data(), static_cast<int>(body.size()), SQLITE_STATIC);
  sqlite3_bind_int64(q, 2, static_cast<sqlite3_int64>(first_seq));
  EXPECT_EQ(sqlite3_step(q), SQLITE_DONE);
  sqlite3_finalize(q);
  sqlite3_close(db);
}

}  // namespace

TEST(StoredBatch, EveryFieldSurvivesTheRoundTrip) {
  const auto& cat = catalogue();
  std::vector<std::uint32_t> code_of(cat.indicators().size());
  std::vector<std::string> name_of(cat.indicators().size() + 1);
  for (std::size_t i = 0; i < code_of.size(); ++i) {
    code_of[i] = static_cast<std::uint32_t>(i + 1);
    name_of[i + 1] = cat.indicators()[i].id;
  }
  const std::int64_t big = std::numeric_limits<std::int64_t>::max();
  std::vector<PersistedEvent> in(7);
  in[0] = event(0, 1000, 1'800'000'000'000, 1'800'000'000'500);
  in[1] = event(0, 999, 5, 1'800'000'000'500);  // lower seq, an old observation
  in[1].number = -2.5;
  in[1].late = true;
  in[2] = event(0, 1'000'000'000'000, big, 1'800'000'000'501);  // a far seq, the largest time
  in[2].number = std::numeric_limits<double>::quiet_NaN();
  in[2].refused = EventRefusal::Future;
  in[3] = event(0, 1001, -big, 1'800'000'000'500);
  in[3].number = -0.0;
  in[3].clock_correction_ms = -3'600'000;
  in[4] = event(0, 1002, 1'800'000'000'000, 1'800'000'000'500);
  in[4].refused = EventRefusal::UnknownIndicator;
  in[4].unknown_indicator = "no_such_indicator";
  in[5] = event(0, 1003, 1'800'000'000'000, 1'800'000'000'500);
  in[5].kind = ValueKind::Text;
  in[5].text = "text with\nnewline, comma";
  in[5].number = 0;
  in[6] = event(0, 1004, 1'800'000'000'000, 1'800'000'000'500);
  in[6].number = 9007199254740993.0;  // past 2^53: stored as a double
  in[6].refused = EventRefusal::BadValue;
  std::string body;
  auto s = encode_stored_batch(in, code_of, body);
  EXPECT_EQ(s.count, 7u);
  EXPECT_EQ(s.first_seq, 1000u);
  EXPECT_EQ(s.last_seq, 1'000'000'000'000u);
  EXPECT_EQ(s.min_observed_ms, -big);
  EXPECT_EQ(s.max_observed_ms, big);
  std::vector<StoredEventRow> out;
  StoredEventRow row;
  ASSERT_TRUE(decode_stored_batch(body, s, name_of, row, [&](const StoredEventRow& r) { out.push_back(r); }));
  ASSERT_EQ(out.size(), in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(out[i].seq, in[i].seq);
    EXPECT_EQ(out[i].observed_at_ms, in[i].observed_at_ms);
    EXPECT_EQ(out[i].received_at_ms, in[i].received_at_ms);
    EXPECT_EQ(out[i].clock_correction_ms, in[i].clock_correction_ms);
    EXPECT_EQ(out[i].kind, in[i].kind);
    EXPECT_EQ(out[i].late, in[i].late);
    EXPECT_EQ(out[i].refused, in[i].refused);
    EXPECT_EQ(out[i].text, std::string(in[i].text));
    if (std::isnan(in[i].number)) {
      EXPECT_TRUE(std::isnan(out[i].number));
    } else {
      EXPECT_EQ(out[i].number, in[i].number);
      EXPECT_EQ(std::signbit(out[i].number), std::signbit(in[i].number)) << out[i].number;
    }
  }
  EXPECT_EQ(out[0].indicator, "terrorism_threat_level");
  EXPECT_EQ(out[4].indicator, "no_such_indicator");

  // Every cut short of the whole body is refused, never read past its end.
  for (std::size_t cut = 0; cut < body.size(); ++cut) {
    std::size_t n = 0;
    EXPECT_FALSE(decode_stored_batch(std::string_view(body).substr(0, cut), s, name_of, row,
                                     [&](const StoredEventRow&) { ++n; }))
        << cut;
    EXPECT_LT(n, in.size());
  }
}

// A record whose bytes changed on disk (a flipped bit) is found by its checksum at start-up,
// reported with what it held, and skipped; every other record is replayed.
TEST(Store, ADamagedRecordIsReportedAndEverythingElseReplayed) {
  test::TempDir dir;
  StoreOptions opt{dir.path() / "store.sqlite"};
  opt.commit_interval = 5ms;
  const auto now = now_utc_ms();
  {
    EventStore store(opt, catalogue(), quiet());
    store.start();
    store.register_agent(0, "bamako", "gw-1");
    for (int b = 0; b < 3; ++b) {
      persist_run(store, 0, 1 + 10 * static_cast<std::uint64_t>(b), 10, now);
      ASSERT_TRUE(store.flush(5s));
    }
  }
  ASSERT_EQ(replayed(opt), 30u);
  // Flip one bit in the middle of the second record's body.
  flip_a_bit(opt.file, 11);
  std::ostringstream log_text;
  auto log = std::make_shared<spdlog::logger>("s", std::make_shared<spdlog::sinks::ostream_sink_st>(log_text));
  EventStore store(opt, catalogue(), log);
  std::vector<std::uint64_t> seqs;
  EXPECT_EQ(store.replay([&](const StoredEventRow& r) { seqs.push_back(r.seq); }), 20u);
  log->flush();
  EXPECT_EQ(store.corrupt_batches(), 1u);
  EXPECT_EQ(store.corrupt_events(), 10u);
  ASSERT_EQ(seqs.size(), 20u);
  EXPECT_EQ(seqs.front(), 1u);
  EXPECT_EQ(seqs[10], 21u);  // the third record, after the damaged second
  EXPECT_NE(log_text.str().find("seqs 11-20) is damaged (checksum mismatch); 10 of its 10 event(s) are lost"),
            std::string::npos)
      << log_text.str();
}

// postwatch-store's reader: beside a running writer it sees every committed event of the agent
// asked for, in stored order; a damaged record is listed with what it held, not skipped silently.
TEST(StoreReader, ReadsBesideTheWriterAndListsADamagedRecord) {
  test::TempDir dir;
  StoreOptions opt{dir.path() / "store.sqlite"};
  opt.commit_interval = 5ms;
  const auto now = now_utc_ms();
  EventStore store(opt, catalogue(), quiet());
  store.start();
  store.register_agent(0, "bamako", "gw-1");
  store.register_agent(1, "bamako", "gw-2");
  for (int b = 0; b < 3; ++b) persist_run(store, 0, 1 + 10 * static_cast<std::uint64_t>(b), 10, now);
  persist_run(store, 1, 1, 5, now);
  ASSERT_TRUE(store.flush(5s));

  StoreReader reader(opt.file);  // the writer is still open
  std::vector<std::uint64_t> seqs;
  auto scan = reader.scan({"bamako", "gw-1", ""}, [&](const StoredEventRow& r) {
    EXPECT_EQ(r.agent, "gw-1");
    EXPECT_EQ(r.indicator, "terrorism_threat_level");
    seqs.push_back(r.seq);
  });
  EXPECT_EQ(scan.records, 3u);
  EXPECT_EQ(scan.events, 30u);
  EXPECT_TRUE(scan.damaged.empty());
  ASSERT_EQ(seqs.size(), 30u);
  EXPECT_TRUE(std::is_sorted(seqs.begin(), seqs.end()));
  EXPECT_EQ(reader.scan({"", "", "no_such_indicator"}, [](const StoredEventRow&) {}).events, 0u);

  flip_a_bit(opt.file, 11);
  scan = reader.scan({}, [](const StoredEventRow&) {});
  EXPECT_EQ(scan.records, 4u);
  EXPECT_EQ(scan.events, 25u);
  ASSERT_EQ(scan.damaged.size(), 1u);
  EXPECT_EQ(scan.damaged[0].agent, "gw-1");
  EXPECT_EQ(scan.damaged[0].first_seq, 11u);
  EXPECT_EQ(scan.damaged[0].events_lost, 10u);
  EXPECT_EQ(scan.damaged[0].problem, "checksum mismatch");
}

// A file that is not a store is refused with its name and what it is instead.
TEST(StoreReader, RefusesWhatIsNotAStore) {
  test::TempDir dir;
  auto expect_refusal = [](const std::filesystem::path& file, const std::string& says) {
    try {
      StoreReader reader(file);
      ADD_FAILURE() << file << " was accepted";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(file.string()), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
    }
  };
  expect_refusal(dir.path() / "missing.sqlite", "no such store file");
  { std::ofstream(dir.path() / "text.sqlite") << "not a database, just text that is long enough to be read\n"; }
  expect_refusal(dir.path() / "text.sqlite", "not a database");
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir.path() / "old.sqlite").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE events(post TEXT)", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  expect_refusal(dir.path() / "old.sqlite", "old per-event layout");
}

// A power cut mid-write leaves the write-ahead log cut inside a frame: SQLite keeps every
// commit before it and drops the torn one, so what was confirmed (committed) is there.
TEST(Store, AWriteAheadLogCutMidFrameKeepsEveryCommitBeforeIt) {
  test::TempDir dir;
  StoreOptions opt{dir.path() / "store.sqlite"};
  opt.commit_interval = 5ms;
  auto copy = dir.path() / "copy.sqlite";
  {
    EventStore store(opt, catalogue(), quiet());
    store.start();
    store.register_agent(0, "bamako", "gw-1");
    persist_run(store, 0, 1, 50, now_utc_ms());
    ASSERT_TRUE(store.flush(5s));
    const auto wal_after_first = std::filesystem::file_size(opt.file.string() + "-wal");
    persist_run(store, 0, 51, 50, now_utc_ms());
    ASSERT_TRUE(store.flush(5s));
    // The machine stops here: the files as they are on disk, the last commit torn.
    std::filesystem::copy_file(opt.file, copy);
    std::filesystem::copy_file(opt.file.string() + "-wal", copy.string() + "-wal");
    const auto wal = std::filesystem::file_size(copy.string() + "-wal");
    ASSERT_GT(wal, wal_after_first);
    std::filesystem::resize_file(copy.string() + "-wal", wal - 100);
  }
  StoreOptions cut = opt;
  cut.file = copy;
  std::vector<StoredEventRow> rows;
  EXPECT_EQ(replayed(cut, &rows), 50u);
  ASSERT_EQ(rows.size(), 50u);
  EXPECT_EQ(rows.back().seq, 50u);
  EXPECT_EQ(replayed(opt), 100u);  // the intact original has both
}

// Age: records received before the retention go, the others stay. Bytes: the oldest go
// until the store fits, but never one received within keep_at_least_ms.
TEST(Store, RetentionRemovesOnlyWhatItMay) {
  test::TempDir dir;
  StoreOptions opt{dir.path() / "store.sqlite"};
  opt.commit_interval = 5ms;
  opt.event_retention_ms = 365 * kDayMs;  // nothing goes while the store is filled
  const auto now = now_utc_ms();
  {
    EventStore store(opt, catalogue(), quiet());
    store.start();
    store.register_agent(0, "bamako", "old");
    store.register_agent(1, "bamako", "week");
    store.register_agent(2, "bamako", "new");
    for (int b = 0; b < 20; ++b) persist_run(store, 0, 1 + 100 * static_cast<std::uint64_t>(b), 100, now - 10 * kDayMs);
    for (int b = 0; b < 20; ++b) persist_run(store, 1, 1 + 100 * static_cast<std::uint64_t>(b), 100, now - 5 * kDayMs);
    for (int b = 0; b < 20; ++b) persist_run(store, 2, 1 + 100 * static_cast<std::uint64_t>(b), 100, now - 1000);
    ASSERT_TRUE(store.flush(5s));
  }
  auto per_agent = [&](const StoreOptions& o) {
    std::map<std::string, int> n;
    EventStore store(o, catalogue(), quiet());
    store.replay([&](const StoredEventRow& r) { n[r.agent] += 1; });
    return n;
  };
  ASSERT_EQ(per_agent(opt), (std::map<std::string, int>{{"old", 2000}, {"week", 2000}, {"new", 2000}}));
  {
    StoreOptions by_age = opt;
    by_age.event_retention_ms = 8 * kDayMs;
    EventStore store(by_age, catalogue(), quiet());
    store.start();  // retention runs at its first round
    ASSERT_TRUE(test::wait_until([&] { return store.events_pruned() >= 2000; }, 10s));
    EXPECT_EQ(store.events_pruned(), 2000u);
  }
  EXPECT_EQ(per_agent(opt), (std::map<std::string, int>{{"week", 2000}, {"new", 2000}}));
  {
    StoreOptions by_size = opt;
    by_size.max_bytes = 1;  // far too small: all it may remove goes, nothing of the last 2 days
    by_size.keep_at_least_ms = 2 * kDayMs;
    EventStore store(by_size, catalogue(), quiet());
    store.start();
    ASSERT_TRUE(test::wait_until([&] { return store.events_pruned() >= 2000; }, 10s));
    EXPECT_TRUE(store.flush(5s));
    EXPECT_EQ(store.events_pruned(), 2000u);
  }
  EXPECT_EQ(per_agent(opt), (std::map<std::string, int>{{"new", 2000}}));
}

// The event history: the newest `limit` by observed time across every record (late events
// sit in recent records with old times), ties by agent and seq, and the indicator filter.
TEST(Store, HistoryQueryReturnsTheNewestObservedAcrossRecords) {
  test::TempDir dir;
  StoreOptions opt{dir.path() / "store.sqlite"};
  opt.commit_interval = 5ms;
  EventStore store(opt, catalogue(), quiet());
  store.start();
  store.register_agent(0, "bamako", "a");
  store.register_agent(1, "bamako", "b");
  store.register_agent(2, "kabul", "c");
  const auto& cat = catalogue();
  const auto other = *cat.indicator_index("cyber_incidents");
  std::mt19937 rng(7);
  const std::int64_t t0 = 1'800'000'000'000;
  std::vector<StoredEventRow> all;
  std::uint64_t seq[3] = {0, 0, 0};
  for (int b = 0; b < 200; ++b) {
    const auto agent = static_cast<std::uint32_t>(rng() % 3);
    std::vector<PersistedEvent> events;
    const int n = 1 + static_cast<int>(rng() % 20);
    for (int i = 0; i < n; ++i) {
      // Mostly recent, some late by hours; many share a millisecond.
      std::int64_t observed = t0 + b * 1000 - (rng() % 10 == 0 ? static_cast<std::int64_t>(rng() % 3'600'000) : 0);
      auto e = event(agent, ++seq[agent], observed, t0 + b * 1000);
      if (agent == 2) e.post = *cat.post_index("kabul");
      if (rng() % 4 == 0) e.indicator = other;
      events.push_back(e);
      if (agent != 2) {
        StoredEventRow r;
        r.agent.assign(1, agent == 0 ? 'a' : 'b');
        r.seq = e.seq;
        r.observed_at_ms = observed;
        r.indicator = cat.indicators()[e.indicator].id;
        all.push_back(r);
      }
    }
    store.persist(events);
  }
  ASSERT_TRUE(store.flush(5s));
  std::sort(all.begin(), all.end(), [](const StoredEventRow& x, const StoredEventRow& y) {
    return std::tie(y.observed_at_ms, x.agent, x.seq) < std::tie(x.observed_at_ms, y.agent, y.seq);
  });
  for (std::size_t limit : {1u, 7u, 100u, 100000u}) {
    SCOPED_TRACE(limit);
    auto got = store.query_events({"bamako", "", t0 - 10 * 3'600'000, t0 + 1'000'000, limit});
    ASSERT_EQ(got.size(), std::min(limit, all.size()));
    for (std::size_t i = 0; i < got.size(); ++i) {
      ASSERT_EQ(got[i].observed_at_ms, all[i].observed_at_ms) << i;
      ASSERT_EQ(got[i].agent, all[i].agent) << i;
      ASSERT_EQ(got[i].seq, all[i].seq) << i;
    }
  }
  // A window and an indicator.
  const std::int64_t from = t0 + 50'000, to = t0 + 120'000;
  std::vector<StoredEventRow> want;
  for (const auto& r : all)
    if (r.observed_at_ms >= from && r.observed_at_ms <= to && r.indicator == "cyber_incidents") want.push_back(r);
  auto got = store.query_events({"bamako", "cyber_incidents", from, to, 10000});
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i].seq, want[i].seq) << i;
}
