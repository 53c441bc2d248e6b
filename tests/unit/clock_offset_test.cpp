// Agents with wrong clocks (docs/aggregator.md, "Time"): the offset estimate, the
// correction of event times, and that every new event is stored, refused or not.
#include "ingest/clock_offset.hpp"
#include "ingest/agent_presence.hpp"
#include "ingest/batch_ingest.hpp"
#include "postwatch/wire_codec.hpp"
#include "store/event_store.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>

#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <map>

using namespace postwatch;
using namespace postwatch::aggregator;

namespace {

std::shared_ptr<spdlog::logger> quiet() {
  return std::make_shared<spdlog::logger>("q", std::make_shared<spdlog::sinks::null_sink_mt>());
}

const IndicatorCatalogue& catalogue() { return test::shipped_catalogue(); }

constexpr std::int64_t kNow = 1'800'000'000'000;
constexpr std::int64_t kHour = 3'600'000;
constexpr std::int64_t kDay = 24 * kHour;

struct StoredCopy {
  PersistedEvent e;
  std::string indicator;
};

// What BatchIngest hands to the store, kept.
struct RecordingSink : EventSink {
  std::vector<StoredCopy> stored;
  void register_agent(std::uint32_t, std::string_view, std::string_view) override {}
  void persist(std::span<const PersistedEvent> events) override {
    for (const auto& e : events) {
      stored.push_back({e, std::string(e.unknown_indicator)});
      stored.back().e.text = {};
      stored.back().e.unknown_indicator = {};
    }
  }
};

struct Ingest {
  IndicatorState state{catalogue()};
  AgentTable agents{catalogue()};
  RecordingSink sink;
  BatchIngest ingest{catalogue(), agents, state, quiet(), IngestPolicy{}, &sink};
  AgentPresence presence{catalogue(), agents, quiet()};
  const std::string topic = "postwatch/v1/sub-saharan-africa/bamako/a1/events";
  std::uint64_t seq = 1;

  // One event observed `age_ms` before the batch was sent, by a clock `offset_ms` off ours,
  // received `delay_ms` after it was sent (our clock: `now`).
  std::size_t send(std::int64_t offset_ms, std::int64_t now, double value = 3, std::int64_t delay_ms = 20,
                   bool prompt = true, std::uint32_t epoch = 0, std::string indicator = "terrorism_threat_level") {
    const std::int64_t sent = now - delay_ms + offset_ms;
    EventBatch b{"a1",
                 "bamako",
                 sent,
                 {IndicatorEvent{seq++, sent - 500, indicator, ValueKind::Level, value, "", "", {}}},
                 epoch};
    return ingest.on_message(topic, encode_batch(b), now, prompt);
  }
  const Reading& reading() const {
    return state.at(*catalogue().post_index("bamako"), *catalogue().indicator_index("terrorism_threat_level"));
  }
  const AgentRecord& agent() const { return *agents.find("bamako/a1"); }
};

}  // namespace

TEST(ClockOffsetTest, AFastClockIsCorrectedAtOnceAndASlowOneOnlyFromAPromptSample) {
  ClockPolicy policy;
  ClockOffset fast;
  fast.observe({kHour, kNow, false}, policy);  // even a message that may have waited
  EXPECT_EQ(fast.correction_ms(), kHour);

  ClockOffset slow;
  slow.observe({-2 * kDay, kNow, false}, policy);
  EXPECT_EQ(slow.correction_ms(), 0) << "a message that may have waited two days in the broker";
  slow.observe({-2 * kDay + 30, kNow + 1000, true}, policy);
  EXPECT_EQ(slow.correction_ms(), -2 * kDay + 30) << "a heartbeat says so too";
  EXPECT_EQ(slow.estimate_ms(), -2 * kDay + 30);
}

TEST(ClockOffsetTest, ARightClockWithDelayedMessagesIsNeverCorrected) {
  ClockPolicy policy;
  ClockOffset c;
  // The broker held ten minutes of batches for us: each looks slow by its wait, the last not.
  for (int i = 0; i < 600; i += 10) c.observe({-(600 - i) * 1000LL, kNow + i, false}, policy);
  EXPECT_EQ(c.correction_ms(), 0);
  c.observe({-40, kNow + 700, true}, policy);
  EXPECT_EQ(c.correction_ms(), 0);
  EXPECT_GT(c.estimate_ms(), -1000);
}

TEST(ClockOffsetTest, TheEstimateIsTheLeastDelayedSampleAndForgetsOldOnes) {
  ClockPolicy policy;
  ClockOffset c;
  c.observe({kHour - 900, kNow, true}, policy);
  c.observe({kHour - 20, kNow + 1000, true}, policy);
  c.observe({kHour - 4000, kNow + 2000, true}, policy);
  EXPECT_EQ(c.estimate_ms(), kHour - 20);
  c.observe({kHour - 3000, kNow + policy.window_ms + 1500, true}, policy);  // the best one left the window
  EXPECT_EQ(c.estimate_ms(), kHour - 3000);
}

TEST(ClockOffsetTest, AnUnreportedBackwardJumpRestartsAfterThreePromptSamples) {
  ClockPolicy policy;
  ClockOffset c;
  c.observe({kHour, kNow, true}, policy);
  c.observe({kHour, kNow + 1000, true}, policy);
  c.observe({0, kNow + 2000, true}, policy);  // NTP set it right
  c.observe({0, kNow + 3000, true}, policy);
  EXPECT_EQ(c.correction_ms(), kHour) << "two samples could be a glitch";
  c.observe({0, kNow + 4000, true}, policy);
  EXPECT_EQ(c.correction_ms(), 0);
}

TEST(ClockTimes, AFastClocksEventsAreCorrectedStoredAndShown) {
  Ingest in;
  EXPECT_EQ(in.send(kHour, kNow), 1u);
  EXPECT_EQ(in.ingest.counters().events_future, 0u);
  EXPECT_EQ(in.ingest.counters().events_time_corrected, 1u);
  ASSERT_EQ(in.sink.stored.size(), 1u);
  const PersistedEvent& e = in.sink.stored[0].e;
  EXPECT_EQ(e.refused, EventRefusal::None);
  EXPECT_NEAR(static_cast<double>(e.clock_correction_ms), static_cast<double>(kHour), 100);
  EXPECT_NEAR(static_cast<double>(e.observed_at_ms), static_cast<double>(kNow - 500), 100) << "its true time";
  ASSERT_TRUE(in.reading().present);
  EXPECT_EQ(in.reading().clock_correction_ms, e.clock_correction_ms);
  EXPECT_EQ(in.reading().observed_at_ms, e.observed_at_ms);
  EXPECT_EQ(in.agent().clock.events_corrected, 1u);
}

TEST(ClockTimes, ASlowClockIsCorrectedWhenTheBatchCannotHaveWaited) {
  Ingest in;
  EXPECT_EQ(in.send(-2 * kDay, kNow), 1u);
  ASSERT_EQ(in.sink.stored.size(), 1u);
  EXPECT_NEAR(static_cast<double>(in.sink.stored[0].e.observed_at_ms), static_cast<double>(kNow - 500), 100);
  EXPECT_FALSE(in.sink.stored[0].e.late);
  EXPECT_EQ(in.ingest.counters().events_late, 0u);
  EXPECT_NE(in.reading().clock_correction_ms, 0);
}

TEST(ClockTimes, ASlowLookingBatchThatMayHaveWaitedKeepsItsTimeAndStillShowsAsNewest) {
  Ingest in;
  EXPECT_EQ(in.send(-2 * kDay, kNow, 4, 20, /*prompt=*/false), 1u);
  ASSERT_EQ(in.sink.stored.size(), 1u);
  EXPECT_EQ(in.sink.stored[0].e.clock_correction_ms, 0);
  EXPECT_TRUE(in.sink.stored[0].e.late);
  EXPECT_EQ(in.ingest.counters().events_late, 1u);
  ASSERT_TRUE(in.reading().present) << "late, but the newest reading of its indicator";
  EXPECT_EQ(in.reading().number, 4);
  // A heartbeat (prompt) then confirms the offset: later events are corrected.
  AgentState hb;
  hb.agent_id = "a1";
  hb.post_id = "bamako";
  hb.at_ms = kNow + 1000 - 2 * kDay;
  in.presence.on_message("postwatch/v1/sub-saharan-africa/bamako/a1/heartbeat", encode_agent_state(hb), kNow + 1000);
  EXPECT_EQ(in.send(-2 * kDay, kNow + 2000, 2, 20, false), 1u);
  EXPECT_NE(in.sink.stored.back().e.clock_correction_ms, 0);
  EXPECT_EQ(in.reading().number, 2);
}

TEST(ClockTimes, ALateReadingOlderThanTheShownOneDoesNotReplaceIt) {
  Ingest in;
  EventBatch b{"a1",
               "bamako",
               kNow,
               {IndicatorEvent{1, kNow - 1000, "terrorism_threat_level", ValueKind::Level, 2, "", "", {}}}};
  in.ingest.on_message(in.topic, encode_batch(b), kNow);
  b.events[0] = IndicatorEvent{2, kNow - kDay, "terrorism_threat_level", ValueKind::Level, 5, "", "", {}};
  EXPECT_EQ(in.ingest.on_message(in.topic, encode_batch(b), kNow + 10), 1u);
  EXPECT_EQ(in.ingest.counters().events_late, 1u);
  EXPECT_EQ(in.reading().number, 2);
  EXPECT_EQ(in.sink.stored.size(), 2u) << "the late one is stored all the same";
}

TEST(ClockTimes, EveryRefusedEventIsStoredWithItsReason) {
  Ingest in;
  // In the future by more than the skew allowed, from a right clock (an input with its own time).
  EventBatch b{"a1",
               "bamako",
               kNow,
               {IndicatorEvent{1, kNow + kHour, "terrorism_threat_level", ValueKind::Level, 3, "", "", {}}}};
  EXPECT_EQ(in.ingest.on_message(in.topic, encode_batch(b), kNow), 0u);
  b.events[0] = IndicatorEvent{2, kNow, "no_such_indicator", ValueKind::Level, 3, "", "", {}};
  EXPECT_EQ(in.ingest.on_message(in.topic, encode_batch(b), kNow), 0u);
  b.events[0] = IndicatorEvent{3, kNow, "terrorism_threat_level", ValueKind::Level, 99, "", "", {}};
  EXPECT_EQ(in.ingest.on_message(in.topic, encode_batch(b), kNow), 0u);
  ASSERT_EQ(in.sink.stored.size(), 3u);
  EXPECT_EQ(in.sink.stored[0].e.refused, EventRefusal::Future);
  EXPECT_EQ(in.sink.stored[1].e.refused, EventRefusal::UnknownIndicator);
  EXPECT_EQ(in.sink.stored[1].indicator, "no_such_indicator");
  EXPECT_EQ(in.sink.stored[2].e.refused, EventRefusal::BadValue);
  EXPECT_FALSE(in.reading().present);
  EXPECT_EQ(in.agent().events.seqs.highest(), 3u) << "their seqs are settled, so they can be confirmed";
  // Sent again: duplicates, not stored twice.
  EXPECT_EQ(in.ingest.on_message(in.topic, encode_batch(b), kNow), 0u);
  EXPECT_EQ(in.sink.stored.size(), 3u);
}

TEST(ClockTimes, ANewClockEpochRestartsTheEstimate) {
  Ingest in;
  in.send(kHour, kNow);
  EXPECT_NE(in.agent().clock.offset.correction_ms(), 0);
  in.send(0, kNow + 1000, 3, 20, true, /*epoch=*/1);  // the agent says its clock jumped
  EXPECT_EQ(in.agent().clock.offset.correction_ms(), 0);
  EXPECT_EQ(in.sink.stored.back().e.clock_correction_ms, 0);
  EXPECT_EQ(in.agent().clock.epoch, 1u);
}

TEST(ClockTimes, ARightClockIsNeverCorrected) {
  Ingest in;
  for (int i = 0; i < 50; ++i)
    in.send(static_cast<std::int64_t>(i % 7) * 900 - 3000, kNow + i * 1000, 3, 5 + i * 37 % 400);
  EXPECT_EQ(in.ingest.counters().events_time_corrected, 0u);
  for (const auto& s : in.sink.stored) EXPECT_EQ(s.e.clock_correction_ms, 0);
}

// The store keeps both times and the refusal reason, replays them, and serves them to the
// event history; a store from before these columns is upgraded in place.
TEST(ClockStore, CorrectedAndRefusedEventsAreStoredQueriedAndReplayed) {
  test::TempDir dir;
  StoreOptions opt{dir.path() / "store.sqlite"};
  opt.commit_interval = std::chrono::milliseconds(5);
  {
    // A database as the store made it before time correction.
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(opt.file.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(
        sqlite3_exec(
            db,
            "CREATE TABLE events(agent TEXT NOT NULL, seq INTEGER NOT NULL, post TEXT NOT NULL, "
            "indicator TEXT NOT NULL, observed_at_ms INTEGER NOT NULL, received_at_ms INTEGER NOT NULL, "
            "kind INTEGER NOT NULL, number REAL NOT NULL, text TEXT, late INTEGER NOT NULL DEFAULT 0, "
            "PRIMARY KEY(post, agent, seq)) WITHOUT ROWID;"
            "INSERT INTO events VALUES('old', 1, 'bamako', 'terrorism_threat_level', 5, 1800000000000, 0, 2, NULL, 0);",
            nullptr, nullptr, nullptr),
        SQLITE_OK);
    sqlite3_close(db);
  }
  const auto post = *catalogue().post_index("bamako");
  const auto ind = *catalogue().indicator_index("terrorism_threat_level");
  {
    EventStore store(opt, catalogue(), quiet());
    store.start();
    store.register_agent(0, "bamako", "a1");
    std::vector<PersistedEvent> events(2);
    events[0] = {0, post, ind, 1, kNow - 500, kHour, kNow, 4, ValueKind::Level, false, EventRefusal::None, {}, {}};
    events[1] = {0, post, 0, 2, kNow, 0, kNow, 3, ValueKind::Level, false, EventRefusal::UnknownIndicator, {}, "nope"};
    store.persist(events);
    ASSERT_TRUE(store.flush(std::chrono::seconds(5)));
    auto rows = store.query_events({"bamako", "", kNow - kDay, kNow + kDay, 10});
    ASSERT_EQ(rows.size(), 2u);  // the old row (observed at 5 ms) is outside the range
    auto only = store.query_events({"bamako", "terrorism_threat_level", kNow - kDay, kNow + kDay, 10});
    ASSERT_EQ(only.size(), 1u);
    EXPECT_EQ(only[0].clock_correction_ms, kHour);
  }
  EventStore store(opt, catalogue(), quiet());
  std::map<std::string, StoredEventRow> rows;
  EXPECT_EQ(store.replay([&](const StoredEventRow& r) { rows[r.agent + "/" + std::to_string(r.seq)] = r; }), 3u);
  EXPECT_EQ(rows["old/1"].clock_correction_ms, 0);
  EXPECT_EQ(rows["old/1"].refused, EventRefusal::None);
  EXPECT_EQ(rows["a1/1"].clock_correction_ms, kHour);
  EXPECT_EQ(rows["a1/1"].observed_at_ms, kNow - 500);
  EXPECT_EQ(rows["a1/2"].refused, EventRefusal::UnknownIndicator);
  EXPECT_EQ(rows["a1/2"].indicator, "nope");

  // Replayed, the corrected reading shows with its flag and the refused event settles its seq.
  IndicatorState state{catalogue()};
  AgentTable agents{catalogue()};
  BatchIngest ingest{catalogue(), agents, state, quiet()};
  for (const auto& [key, r] : rows) {
    EventView e{r.seq, r.observed_at_ms, r.indicator, r.kind, r.number, r.text, {}};
    ingest.replay(r.post, r.agent, e, r.received_at_ms, r.clock_correction_ms);
  }
  EXPECT_EQ(state.at(post, ind).clock_correction_ms, kHour);
  EXPECT_EQ(state.at(post, ind).observed_at_ms, kNow - 500);
  EXPECT_EQ(agents.find("bamako/a1")->events.seqs.highest(), 2u);
}

// Found by fuzz_aggregator_ingest (UBSan: signed overflow): agent times are any int64.
TEST(ClockTimes, ExtremeAgentTimesNeitherOverflowNorLoseTheEvent) {
  for (std::int64_t sent : {INT64_MIN, INT64_MAX, std::int64_t{-1}})
    for (std::int64_t observed : {INT64_MIN, INT64_MAX, kNow}) {
      Ingest in;
      EventBatch b{"a1",
                   "bamako",
                   sent,
                   {IndicatorEvent{1, observed, "terrorism_threat_level", ValueKind::Level, 3, "", "", {}}}};
      in.ingest.on_message(in.topic, encode_batch(b), kNow);
      EXPECT_EQ(in.sink.stored.size(), 1u) << sent << " " << observed;
      EXPECT_EQ(in.agent().events.seqs.highest(), 1u);
    }
}
