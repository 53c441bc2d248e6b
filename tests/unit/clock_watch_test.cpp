// The agent's side of wrong clocks (docs/agent.md, "Time"): jumps seen against the
// boot-time clock, the sync status, the backlogs' age bound following a jump, and the
// clock fields on the wire.
#include "postwatch/agent/clock_watch.hpp"
#include "postwatch/agent/memory_backlog.hpp"
#include "postwatch/agent/spool_store.hpp"
#include "postwatch/clock.hpp"
#include "postwatch/wire_codec.hpp"
#include "support/test_support.hpp"

#include <sys/timex.h>

#include <gtest/gtest.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

using namespace postwatch;
using namespace postwatch::agent;

namespace {

constexpr std::int64_t kHour = 3'600'000;
constexpr std::int64_t kYear = 365 * 24 * kHour;

// A board: the wall clock may be set; the boot-time clock only runs.
struct FakeBoard {
  std::int64_t wall = 1'700'000'000'000;
  std::int64_t boot = 5'000;
  void run(std::int64_t ms) {
    wall += ms;
    boot += ms;
  }
  ClockWatch watch() {
    return ClockWatch(
        ClockWatch::kDefaultThreshold, [this] { return wall; }, [this] { return boot; });
  }
};

IndicatorEvent level(int v) {
  IndicatorEvent e;
  e.indicator = "terrorism_threat_level";
  e.kind = ValueKind::Level;
  e.number = v;
  e.observed_at_ms = now_utc_ms();
  return e;
}

}  // namespace

TEST(ClockWatch, ARunningClockIsNoJump) {
  FakeBoard b;
  auto w = b.watch();
  for (int i = 0; i < 1000; ++i) {
    b.run(1000);
    b.wall += 1;  // NTP slewing a fast board: 1 ms a second, for 1000 s
    EXPECT_FALSE(w.check());
  }
  EXPECT_EQ(w.jumps(), 0u);
  EXPECT_FALSE(w.last_jump());
}

TEST(ClockWatch, JumpsForwardsAndBackwardsAreCountedOnceEach) {
  FakeBoard b;
  auto w = b.watch();
  b.run(500);
  b.wall += kHour;
  auto j = w.check();
  ASSERT_TRUE(j);
  EXPECT_EQ(j->delta_ms, kHour);
  EXPECT_EQ(j->at_ms, b.wall);
  EXPECT_FALSE(w.check()) << "a jump is reported once";
  b.run(1000);
  b.wall -= kHour;
  j = w.check();
  ASSERT_TRUE(j);
  EXPECT_EQ(j->delta_ms, -kHour);
  EXPECT_EQ(w.jumps(), 2u);
  EXPECT_EQ(w.last_jump()->delta_ms, -kHour);
}

TEST(ClockWatch, ABoardSetFrom1970IsOneJumpOfFiftySixYears) {
  FakeBoard b;
  b.wall = 0;  // RTC-less boot
  auto w = b.watch();
  b.run(60'000);
  b.wall = 1'796'000'000'000;  // NTP syncs
  auto j = w.check();
  ASSERT_TRUE(j);
  EXPECT_EQ(j->delta_ms, 1'796'000'000'000 - 60'000);
}

TEST(ClockWatch, JustBelowTheThresholdIsFollowedNotAccumulated) {
  FakeBoard b;
  auto w = b.watch();
  for (int i = 0; i < 10; ++i) {
    b.wall += ClockWatch::kDefaultThreshold.count() - 1;
    EXPECT_FALSE(w.check());
  }
  b.wall += ClockWatch::kDefaultThreshold.count();
  EXPECT_TRUE(w.check());
}

TEST(ClockSyncStatus, WhatTheKernelSaysAndTheBuildDate) {
  const std::int64_t built = 1'780'000'000'000, now = built + kYear;
  EXPECT_EQ(clock_sync_from(std::pair{TIME_OK, 0}, now, built), ClockSync::Synchronised);
  EXPECT_EQ(clock_sync_from(std::pair{TIME_ERROR, STA_UNSYNC}, now, built), ClockSync::Unsynchronised);
  EXPECT_EQ(clock_sync_from(std::pair{TIME_OK, STA_UNSYNC}, now, built), ClockSync::Unsynchronised);
  EXPECT_EQ(clock_sync_from(std::nullopt, now, built), ClockSync::Unknown);
  // A clock before the build cannot be right, whatever the kernel says.
  EXPECT_EQ(clock_sync_from(std::pair{TIME_OK, 0}, 0, built), ClockSync::Unsynchronised);
  EXPECT_EQ(clock_sync_from(std::nullopt, built - 1, built), ClockSync::Unsynchronised);
  EXPECT_GT(agent_built_at_ms(), 1'700'000'000'000) << "the build defines POSTWATCH_BUILT_AT_S";
  EXPECT_LE(agent_built_at_ms(), now_utc_ms());
}

TEST(ClockJumpBacklog, ASpoolKeepsEverythingWhenTheClockIsSetFiftySixYearsForward) {
  test::TempDir dir;
  SpoolOptions o;
  o.dir = dir.path() / "spool";
  o.segment_bytes = 4 * 1024;  // several segments: the age bound never drops the newest
  o.fsync = FsyncPolicy::Never;
  o.max_age = std::chrono::hours(24);
  auto log = std::make_shared<spdlog::logger>("spool", std::make_shared<spdlog::sinks::null_sink_mt>());
  const std::int64_t jump = 56 * kYear;
  std::uint64_t held = 0;
  {
    SpoolStore s(o, log);
    for (int i = 0; i < 500; ++i) s.append(level(1 + i % 5));
    held = s.stats().events;
    s.clock_jumped(jump);
    s.maintain(now_utc_ms() + jump);
    EXPECT_EQ(s.stats().events, held) << "a jump made the held events look 56 years old";
    EXPECT_EQ(s.stats().dropped, 0u);
  }
  // Without the jump told, the same upkeep drops all but the newest segment: the check above can fail.
  SpoolStore s(o, log);
  ASSERT_EQ(s.stats().events, held);
  s.maintain(now_utc_ms() + jump);
  EXPECT_LT(s.stats().events, held);
}

TEST(ClockJumpBacklog, AMemoryBacklogsAgesFollowTheJump) {
  MemoryBacklog m(100);
  m.append(level(3));
  const auto before = m.stats().oldest_appended_ms;
  m.clock_jumped(-kHour);
  EXPECT_EQ(m.stats().oldest_appended_ms, before - kHour);
}

TEST(ClockWire, TheClockFieldsRoundTrip) {
  AgentState st;
  st.agent_id = "a1";
  st.post_id = "kyiv";
  st.at_ms = 12;
  st.clock_sync = ClockSync::Unsynchronised;
  st.clock_jumps = 3;
  st.last_clock_jump_ms = -kHour;
  st.last_clock_jump_at_ms = 1'796'000'000'000;
  auto p = encode_agent_state(st);
  AgentState back;
  ASSERT_EQ(decode_agent_state(p, back), DecodeError::None);
  EXPECT_EQ(back.clock_sync, ClockSync::Unsynchronised);
  EXPECT_EQ(back.clock_jumps, 3u);
  EXPECT_EQ(back.last_clock_jump_ms, -kHour);
  EXPECT_EQ(back.last_clock_jump_at_ms, 1'796'000'000'000);
  EXPECT_EQ(to_string(back.clock_sync), "unsynchronised");

  EventBatch b;
  b.agent_id = "a1";
  b.post_id = "kyiv";
  b.sent_at_ms = 5;
  b.clock_epoch = 2;
  auto e = level(2);
  e.seq = 1;
  b.events.push_back(e);
  auto bp = encode_batch(b);
  EventBatch bb;
  ASSERT_EQ(decode_batch(bp, bb), DecodeError::None);
  EXPECT_EQ(bb.clock_epoch, 2u);
}
