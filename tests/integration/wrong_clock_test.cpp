// Boards with wrong clocks (docs/aggregator.md, "Time"): the real postwatch-agent under
// libfaketime (Debian's faketime) against a real Mosquitto and the real aggregator. Each
// event must be stored before it is confirmed, shown on the board at its corrected time,
// and flagged; a right clock is never flagged.
#include "support/aggregator_process.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <regex>

#include <glob.h>

#include <cstdlib>

#include <fstream>
#include <set>

using namespace postwatch;
using namespace postwatch::test;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr std::int64_t kHour = 3'600'000;
constexpr std::int64_t kDay = 24 * kHour;

fs::path faketime_library() {
  glob_t g{};
  fs::path found;
  if (::glob("/usr/lib/*/faketime/libfaketimeMT.so.1", 0, nullptr, &g) == 0 && g.gl_pathc > 0) found = g.gl_pathv[0];
  ::globfree(&g);
  return found;
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class WrongClock : public ::testing::Test {
 protected:
  void SetUp() override {
    lib = faketime_library();
    ASSERT_FALSE(lib.empty()) << "libfaketime is missing: tools/bootstrap installs Debian's faketime";
  }

  fs::path agent_config(const std::string& post, const std::string& agent, int heartbeat_s = 30) {
    auto cfg = dir.path() / (post + "-" + agent + ".json");
    std::ofstream(cfg) << json{{"broker_uri", broker.uri()},
                               {"allow_plaintext", true},
                               {"agent_id", agent},
                               {"post_id", post},
                               {"heartbeat_interval_s", heartbeat_s},
                               {"spool", {{"dir", (dir.path() / (agent + "-spool")).string()}}},
                               {"catalogue_file", catalogue_path().string()}}
                              .dump();
    return cfg;
  }

  // argv prefixed so the agent runs with a fake wall clock (`faketime` is libfaketime's
  // FAKETIME spec, or empty for the real clock). The monotonic clock stays real, as on a board.
  std::vector<std::string> under_faketime(const std::string& faketime, std::vector<std::string> argv,
                                          const std::vector<std::string>& more_env = {}) {
    if (faketime.empty() && more_env.empty()) return argv;
    std::vector<std::string> a = {"/usr/bin/env", "LD_PRELOAD=" + lib.string(), "DONT_FAKE_MONOTONIC=1"};
    // An AddressSanitizer build wants its runtime first in the library list; libfaketime only
    // wraps time calls, so that check is waived (tools/test's sanitizer runs).
    const char* asan = std::getenv("ASAN_OPTIONS");
    a.push_back(std::string("ASAN_OPTIONS=") + (asan && *asan ? std::string(asan) + ":" : "") +
                "verify_asan_link_order=0");
    // libfaketime wraps pthread_cond_timedwait and calls libc's directly, so ThreadSanitizer
    // never sees the wait release the mutex: Paho's re-lock looks like a double lock, and its
    // locks taken around the wait like a lock-order inversion. Those two classes of report are
    // waived, only under faketime; data races are still reported.
    const char* tsan = std::getenv("TSAN_OPTIONS");
    if (tsan && *tsan) a.push_back(std::string("TSAN_OPTIONS=") + tsan + ":report_mutex_bugs=0:detect_deadlocks=0");
    if (!faketime.empty()) a.push_back("FAKETIME=" + faketime);
    a.insert(a.end(), more_env.begin(), more_env.end());
    a.insert(a.end(), argv.begin(), argv.end());
    return a;
  }

  // One `emit` of terrorism_threat_level=4 by a board whose clock is `faketime`.
  void emit(const std::string& faketime, const std::string& post, const std::string& agent) {
    auto argv = under_faketime(faketime, {(binary_dir() / "agent" / "postwatch-agent").string(), "emit", "--config",
                                          agent_config(post, agent).string(), "--indicator", "terrorism_threat_level",
                                          "--value", "4", "--timeout-s", "20"});
    ChildProcess p(argv, dir.path() / (agent + "-emit.log"));
    ASSERT_EQ(p.wait(std::chrono::seconds(30)), 0) << p.log();
    EXPECT_NE(p.log().find("confirmed by the aggregator"), std::string::npos) << p.log();
  }

  // What the board and the event history say of the post after one emit at `sent_ms` (our clock).
  void expect_shown_corrected(const std::string& post, std::int64_t offset_ms, std::int64_t sent_ms) {
    // Confirmed means committed: the event is in the store already.
    auto events = aggregator.get("/api/v1/posts/" + post + "/events");
    ASSERT_EQ(events["count"], 1) << events.dump();
    const auto& e = events["events"][0];
    EXPECT_FALSE(e.contains("refused")) << e.dump();
    EXPECT_EQ(e["time_corrected"], true) << e.dump();
    EXPECT_NEAR(e["observed_at_ms"].get<double>(), static_cast<double>(sent_ms), 15'000.0) << e.dump();
    EXPECT_NEAR(e["agent_observed_at_ms"].get<double>() - e["observed_at_ms"].get<double>(),
                static_cast<double>(offset_ms), 15'000.0)
        << e.dump();
    auto csv = http_get(aggregator.port(), "/api/v1/posts/" + post + "/events?format=csv");
    EXPECT_NE(csv.body.find(",true,"), std::string::npos) << csv.body;

    auto board = aggregator.get("/api/v1/posts/" + post);
    ASSERT_EQ(board["indicators"].size(), 1u) << board.dump();
    const auto& reading = board["indicators"][0];
    EXPECT_EQ(reading["value"], 4.0);
    EXPECT_EQ(reading["time_corrected"], true);
    EXPECT_EQ(reading["observed_at_ms"], e["observed_at_ms"]);
    ASSERT_EQ(board["agents"].size(), 1u) << board.dump();
    EXPECT_EQ(board["agents"][0]["clock"]["time_corrected"], true);

    EXPECT_TRUE(wait_until(
        [&] {
          const json alarms = aggregator.get("/api/v1/alarms");
          for (const auto& a : alarms["alarms"])
            if (a["kind"] == "clock_offset" && a["post"] == post && a["state"] == "open" && a["level"] == "amber")
              return true;
          return false;
        },
        std::chrono::seconds(5)))
        << aggregator.get("/api/v1/alarms").dump();
    auto stats = aggregator.get("/api/v1/stats");
    EXPECT_EQ(stats["events_future"], 0);
    const auto metrics = http_get(aggregator.port(), "/metrics").body;
    EXPECT_NE(metrics.find("postwatch_alarms_open{kind=\"clock_offset\"} 1\n"), std::string::npos) << metrics;
    EXPECT_NE(metrics.find("postwatch_alarms_open{kind=\"topic_mismatch\"} 0\n"), std::string::npos) << metrics;
    EXPECT_NE(metrics.find("postwatch_agents_clock_corrected 1\n"), std::string::npos) << metrics;
  }

  // A running agent whose wall clock the test sets (libfaketime re-reads the spec file each
  // second); it starts right. Events go in on its stdin.
  std::vector<std::string> agent_with_settable_clock(const std::string& post, const std::string& agent) {
    set_clock("+0");
    return under_faketime("",
                          {(binary_dir() / "agent" / "postwatch-agent").string(), "run", "--exit-on-eof", "--config",
                           agent_config(post, agent, 1).string()},
                          {"FAKETIME_TIMESTAMP_FILE=" + clock_spec().string(), "FAKETIME_CACHE_DURATION=1"});
  }
  fs::path clock_spec() const { return dir.path() / "faketime.spec"; }
  void set_clock(const std::string& spec) { std::ofstream(clock_spec(), std::ios::trunc) << spec << "\n"; }

  // n terrorism_threat_level events as JSON lines, values cycling from 1 + offset.
  static std::string level_lines(int n, int offset = 0) {
    std::string lines;
    for (int i = 0; i < n; ++i)
      lines += json{{"indicator", "terrorism_threat_level"}, {"value", 1 + (i + offset) % 5}}.dump() + "\n";
    return lines;
  }

  // The post's stored events (all of them, corrected times up to two hours ahead included);
  // each must be at about its true time, [start, end] give or take a minute.
  json stored_events_near(const std::string& post, std::int64_t start, std::int64_t end) {
    json events = aggregator.get("/api/v1/posts/" + post + "/events?from=0&to=" + std::to_string(end + 2 * kHour) +
                                 "&limit=10000");
    for (const auto& e : events["events"]) {
      EXPECT_GE(e["observed_at_ms"].get<std::int64_t>(), start - 60'000) << e.dump();
      EXPECT_LE(e["observed_at_ms"].get<std::int64_t>(), end + 60'000) << e.dump();
    }
    return events;
  }

  fs::path lib;
  TempDir dir;
  MosquittoBroker broker;
  AggregatorProcess aggregator{broker, dir};
};

}  // namespace

TEST_F(WrongClock, AnHourFastIsStoredCorrectedAndFlagged) {
  const auto sent = now_ms();
  ASSERT_NO_FATAL_FAILURE(emit("+1h", "bamako", "fast-1"));
  expect_shown_corrected("bamako", kHour, sent);
}

TEST_F(WrongClock, TwoDaysSlowIsStoredCorrectedAndFlagged) {
  const auto sent = now_ms();
  ASSERT_NO_FATAL_FAILURE(emit("-2d", "kabul", "slow-1"));
  expect_shown_corrected("kabul", -2 * kDay, sent);
}

TEST_F(WrongClock, ABoardThatBootedIn1970IsStoredCorrectedAndFlagged) {
  const auto sent = now_ms();
  ASSERT_NO_FATAL_FAILURE(emit("@1970-01-01 00:00:00", "caracas", "rtc-less-1"));
  expect_shown_corrected("caracas", -sent, sent);
  auto agent = aggregator.get("/api/v1/agents/caracas/rtc-less-1");
  EXPECT_EQ(agent["clock"]["sync"], "unsynchronised") << agent.dump();  // before the agent's build
}

TEST_F(WrongClock, ARightClockIsNeverFlagged) {
  ASSERT_NO_FATAL_FAILURE(emit("", "kyiv", "right-1"));
  auto events = aggregator.get("/api/v1/posts/kyiv/events");
  ASSERT_EQ(events["count"], 1) << events.dump();
  EXPECT_EQ(events["events"][0]["time_corrected"], false);
  EXPECT_EQ(events["events"][0]["clock_correction_ms"], 0);
  auto board = aggregator.get("/api/v1/posts/kyiv");
  EXPECT_EQ(board["indicators"][0]["time_corrected"], false);
  EXPECT_EQ(board["agents"][0]["clock"]["correction_ms"], 0);
  const json alarms = aggregator.get("/api/v1/alarms");
  for (const auto& a : alarms["alarms"]) EXPECT_NE(a["kind"], "clock_offset") << a.dump();
  EXPECT_EQ(aggregator.get("/api/v1/stats")["events_time_corrected"], 0);
}

// A running agent's clock jumps an hour forwards, then back (NTP finally syncing, then a
// bad time source corrected), while it streams: every event is stored once, at about its
// true time, heartbeats go on and both jumps are reported.
TEST_F(WrongClock, JumpsForwardAndBackWhileRunningLoseAndDuplicateNothing) {
  const auto start = now_ms();
  ChildProcess agent(agent_with_settable_clock("niamey", "jumpy-1"), dir.path() / "jumpy.log", /*pipe_stdin=*/true);
  const int per_phase = 1000;
  auto write_phase = [&](int phase) { ASSERT_TRUE(agent.write_stdin(level_lines(per_phase, phase))); };
  auto accepted = [&] { return aggregator.events_accepted(); };
  auto jumps = [&] {
    const json a = aggregator.get("/api/v1/agents/niamey/jumpy-1");
    return a.is_object() ? a["clock"]["jumps"].get<int>() : -1;
  };

  ASSERT_NO_FATAL_FAILURE(write_phase(0));
  ASSERT_TRUE(wait_until([&] { return accepted() == per_phase; }, std::chrono::seconds(30))) << agent.log();
  set_clock("+1h");
  ASSERT_TRUE(wait_until([&] { return jumps() == 1; }, std::chrono::seconds(15))) << agent.log();
  ASSERT_NO_FATAL_FAILURE(write_phase(1));
  ASSERT_TRUE(wait_until([&] { return accepted() == 2 * per_phase; }, std::chrono::seconds(30))) << agent.log();
  set_clock("+0");
  ASSERT_TRUE(wait_until([&] { return jumps() == 2; }, std::chrono::seconds(15))) << agent.log();
  const json after_jump = aggregator.get("/api/v1/agents/niamey/jumpy-1");
  EXPECT_NEAR(after_jump["clock"]["last_jump"]["ms"].get<double>(), -3'600'000.0, 5'000.0) << after_jump.dump();
  ASSERT_NO_FATAL_FAILURE(write_phase(2));
  // Heartbeats go on after both jumps.
  const auto heartbeat_before = after_jump["last_heartbeat_ms"].get<std::int64_t>();
  EXPECT_TRUE(wait_until(
      [&] { return aggregator.get("/api/v1/agents/niamey/jumpy-1")["last_heartbeat_ms"] > heartbeat_before; },
      std::chrono::seconds(5)));
  agent.close_stdin();
  ASSERT_EQ(agent.wait(std::chrono::seconds(60)), 0) << agent.log();
  const auto end = now_ms();

  // At about its true time whatever the board's clock said.
  const json events = stored_events_near("niamey", start, end);
  ASSERT_EQ(events["count"], 3 * per_phase);
  std::set<std::uint64_t> seqs;
  for (const auto& e : events["events"]) {
    seqs.insert(e["seq"].get<std::uint64_t>());
    EXPECT_FALSE(e.contains("refused")) << e.dump();
  }
  EXPECT_EQ(seqs.size(), static_cast<std::size_t>(3 * per_phase)) << "each seq stored once";
  EXPECT_EQ(aggregator.get("/api/v1/stats")["events_accepted"], 3 * per_phase);
  EXPECT_NE(aggregator.process().log().find("reports its clock jumped"), std::string::npos);
  EXPECT_NE(agent.log().find("clock jumped"), std::string::npos) << agent.log();
}

// Events spooled while the broker is away, then the clock jumps an hour forwards before
// they are sent: they go out on the new clock (shifted by the jump), so the aggregator's
// correction puts them back at their true time, not an hour before it.
TEST_F(WrongClock, EventsHeldAcrossAJumpAreSentOnTheNewClock) {
  const auto start = now_ms();
  auto argv = agent_with_settable_clock("dakar", "held-1");
  broker.stop();
  ChildProcess agent(argv, dir.path() / "held.log", /*pipe_stdin=*/true);
  const int n = 500;
  ASSERT_TRUE(agent.write_stdin(level_lines(n)));
  ASSERT_TRUE(
      wait_until([&] { return agent.log().find("cannot connect") != std::string::npos; }, std::chrono::seconds(15)))
      << agent.log();
  set_clock("+1h");
  // The jump is measured between two clock readings, so it may come out a millisecond either
  // side of the hour (CI saw +3599.999 s).
  const std::regex hour_jump(R"(clock jumped \+(3599\.9\d\d|3600\.0\d\d) s)");
  ASSERT_TRUE(wait_until([&] { return std::regex_search(agent.log(), hour_jump); }, std::chrono::seconds(15)))
      << agent.log();
  broker.start();
  ASSERT_TRUE(wait_until([&] { return aggregator.events_accepted() == n; }, std::chrono::seconds(60))) << agent.log();
  agent.close_stdin();
  ASSERT_EQ(agent.wait(std::chrono::seconds(60)), 0) << agent.log();
  const auto end = now_ms();

  const json events = stored_events_near("dakar", start, end);
  ASSERT_EQ(events["count"], n);
  for (const auto& e : events["events"]) EXPECT_EQ(e["time_corrected"], true) << e.dump();
}
