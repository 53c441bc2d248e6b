// Roll-up over time: windows, lateness, order independence, hysteresis,
// minimum duration, alarms, silent posts and coverage, and the store.
#include "ingest/agent_presence.hpp"
#include "ingest/batch_ingest.hpp"
#include "ingest/post_liveness.hpp"
#include "postwatch/clock.hpp"
#include "postwatch/wire_codec.hpp"
#include "rollup/goal_rollup.hpp"
#include "rollup/status_board.hpp"
#include "store/event_store.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>

#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <map>

#include <algorithm>
#include <random>

using namespace postwatch;
using namespace postwatch::aggregator;

namespace {

std::shared_ptr<spdlog::logger> quiet() {
  return std::make_shared<spdlog::logger>("q", std::make_shared<spdlog::sinks::null_sink_mt>());
}

const IndicatorCatalogue& catalogue() { return test::shipped_catalogue(); }

struct Msg {
  std::string topic;
  std::vector<std::uint8_t> payload;
  std::int64_t now_ms;
};

constexpr std::int64_t kT0 = 1'800'000'000'000;

// A random stream: several agents at several posts, batches of events over one hour.
std::vector<std::pair<std::string, EventBatch>> random_batches(std::mt19937& rng) {
  const auto& cat = catalogue();
  std::vector<std::string> posts = {"bamako", "kabul", "caracas", "kyiv", "tripoli"};
  std::vector<std::string> indicators = {"terrorism_threat_level", "cyber_incidents", "displaced_people",
                                         "sanctions_implementation_share", "conflict_early_warning_level"};
  std::vector<std::pair<std::string, EventBatch>> out;
  for (const auto& post : posts) {
    const Post* p = cat.find_post(post);
    for (int a = 0; a < 2; ++a) {
      std::string agent = "ag" + std::to_string(a);
      std::string topic = "postwatch/v1/" + p->region + "/" + post + "/" + agent + "/events";
      std::uint64_t seq = 1;
      std::int64_t t = kT0;
      for (int b = 0; b < 20; ++b) {
        EventBatch batch{agent, post, 0, {}};
        int n = 1 + static_cast<int>(rng() % 30);
        for (int i = 0; i < n; ++i) {
          const auto& id = indicators[rng() % indicators.size()];
          const Indicator* ind = cat.find_indicator(id);
          t += static_cast<std::int64_t>(rng() % 2000);  // a batch spans at most a minute
          double v = ind->kind == ValueKind::Count
                         ? static_cast<double>(rng() % 3)
                         : std::round(ind->min + (ind->max - ind->min) * (rng() % 1000) / 1000.0);
          if (ind->kind == ValueKind::Share) v = 50 + static_cast<double>(rng() % 51);
          batch.events.push_back(IndicatorEvent{seq++, t, id, ind->kind, v, "", "", {}});
        }
        out.emplace_back(topic, std::move(batch));
      }
    }
  }
  return out;
}

struct Pipeline {
  IndicatorState state{catalogue()};
  AgentTable agents{catalogue()};
  BatchIngest ingest{catalogue(), agents, state, quiet()};
  void feed(const Msg& m) { ingest.on_message(m.topic, m.payload, m.now_ms); }
};

void expect_same_state(const Pipeline& a, const Pipeline& b, std::int64_t now) {
  const auto& cat = catalogue();
  for (std::uint32_t p = 0; p < cat.posts().size(); ++p)
    for (std::uint32_t i = 0; i < cat.indicators().size(); ++i) {
      ASSERT_EQ(a.state.at(p, i).present, b.state.at(p, i).present) << p << "/" << i;
      EXPECT_EQ(a.state.at(p, i).number, b.state.at(p, i).number) << p << "/" << i;
      EXPECT_EQ(a.state.at(p, i).observed_at_ms, b.state.at(p, i).observed_at_ms);
      EXPECT_EQ(a.state.value(p, i, now), b.state.value(p, i, now)) << p << "/" << i;
    }
  GoalRollup rollup(catalogue());
  auto ra = rollup.compute(a.state, now), rb = rollup.compute(b.state, now);
  for (std::size_t g = 0; g < ra.goals.size(); ++g) {
    EXPECT_EQ(ra.goals[g].status, rb.goals[g].status);
    EXPECT_DOUBLE_EQ(ra.goals[g].health, rb.goals[g].health);
  }
  EXPECT_EQ(a.ingest.counters().events_accepted, b.ingest.counters().events_accepted);
  EXPECT_EQ(a.ingest.counters().events_gaps, b.ingest.counters().events_gaps);
}

}  // namespace

TEST(AggregatorProperty, ShuffledWithinLatenessAndDuplicatedEqualsSortedDeduplicated) {
  for (unsigned seed = 1; seed <= 20; ++seed) {
    std::mt19937 rng(seed);
    auto batches = random_batches(rng);
    std::int64_t end = kT0;
    for (const auto& [_, b] : batches) end = std::max(end, b.events.back().observed_at_ms);

    // The reference: in order, each batch arriving right after its last observation.
    std::vector<Msg> sorted;
    for (const auto& [topic, b] : batches) sorted.push_back({topic, encode_batch(b), b.events.back().observed_at_ms});
    // The same batches, each delayed by a random part of the allowed lateness (which
    // reorders them), and a third of them delivered twice.
    IngestPolicy policy;
    std::vector<Msg> shuffled = sorted;
    std::size_t n = shuffled.size();
    for (std::size_t i = 0; i < n / 3; ++i) shuffled.push_back(shuffled[rng() % n]);
    for (auto& m : shuffled) m.now_ms += static_cast<std::int64_t>(rng() % (policy.allowed_lateness_ms / 2));
    std::stable_sort(shuffled.begin(), shuffled.end(), [](const Msg& x, const Msg& y) { return x.now_ms < y.now_ms; });
    Pipeline a, b;
    for (const auto& m : sorted) a.feed(m);
    for (const auto& m : shuffled) b.feed(m);
    SCOPED_TRACE("seed " + std::to_string(seed));
    ASSERT_EQ(b.ingest.counters().events_late, 0u);       // every delay stayed within the allowed lateness
    EXPECT_GT(b.ingest.counters().events_reordered, 0u);  // the arrival order really differed
    expect_same_state(a, b, end + 1000);
    EXPECT_GT(b.ingest.counters().events_duplicate, 0u);
    EXPECT_EQ(a.ingest.counters().events_duplicate, 0u);
  }
}

TEST(CountWindowTest, SumsWithinTheWindowAndForgetsOlder) {
  CountWindow w;
  const std::int64_t hour = 3600 * 1000;
  EXPECT_TRUE(w.add(kT0, 2, hour));
  EXPECT_TRUE(w.add(kT0 + 10 * 60 * 1000, 3, hour));
  EXPECT_DOUBLE_EQ(w.sum(kT0 + 20 * 60 * 1000, hour), 5);
  EXPECT_DOUBLE_EQ(w.sum(kT0 + hour + 5 * 60 * 1000, hour), 3);  // the first slid out
  EXPECT_DOUBLE_EQ(w.sum(kT0 + 3 * hour, hour), 0);
  EXPECT_TRUE(w.add(kT0 + 3 * hour, 1, hour));
  EXPECT_FALSE(w.add(kT0, 1, hour));  // far older than the window now holds
}

TEST(Lateness, LateEventsCountAndShowWhereTheyAreTheNewestReading) {
  Pipeline p;
  const std::string topic = "postwatch/v1/sub-saharan-africa/bamako/a1/events";
  EventBatch b{"a1", "bamako", 0, {IndicatorEvent{1, kT0, "terrorism_threat_level", ValueKind::Level, 5, "", "", {}}}};
  IngestPolicy policy;
  p.ingest.on_message(topic, encode_batch(b), kT0 + policy.allowed_lateness_ms + 1);
  EXPECT_EQ(p.ingest.counters().events_late, 1u);
  EXPECT_EQ(p.ingest.counters().events_accepted, 1u);
  auto post = *catalogue().post_index("bamako");
  auto ind = *catalogue().indicator_index("terrorism_threat_level");
  ASSERT_TRUE(p.state.at(post, ind).present) << "the only reading of its indicator";
  EXPECT_EQ(p.state.at(post, ind).observed_at_ms, kT0);

  b.events[0] = IndicatorEvent{2, kT0 + 3'600'000, "terrorism_threat_level", ValueKind::Level, 1, "", "", {}};
  p.ingest.on_message(topic, encode_batch(b), kT0);  // an hour in the future
  EXPECT_EQ(p.ingest.counters().events_future, 1u);
  EXPECT_EQ(p.state.at(post, ind).number, 5) << "a future event is stored, not applied";
}

TEST(Hysteresis, ClearsOnlyOnceClearOfTheThreshold) {
  const Indicator* ind = catalogue().find_indicator("terrorism_threat_level");  // baseline 1, amber 3, red 4
  ASSERT_NE(ind, nullptr);
  const double band = 0.5;  // red clears below 4 - 0.5 * 1 = 3.5, amber below 3 - 0.5 * 2 = 2
  EXPECT_EQ(classify(*ind, 3, Status::Green, band), Status::Amber);  // escalation is immediate
  EXPECT_EQ(classify(*ind, 4, Status::Amber, band), Status::Red);
  EXPECT_EQ(classify(*ind, 3, Status::Red, band), Status::Amber);    // 3 < 3.5: no longer red
  EXPECT_EQ(classify(*ind, 3, Status::Red, 1.0), Status::Red);       // a wide band holds red down to amber
  EXPECT_EQ(classify(*ind, 2, Status::Amber, band), Status::Amber);  // 2 >= 2: still amber
  EXPECT_EQ(classify(*ind, 1, Status::Amber, band), Status::Green);
  EXPECT_EQ(classify(*ind, 2, Status::Unknown, band), Status::Green);
  // Lower-is-worse mirrors it (baseline 100, amber 90, red 75).
  const Indicator* share = catalogue().find_indicator("sanctions_implementation_share");
  ASSERT_NE(share, nullptr);
  EXPECT_EQ(classify(*share, 80, Status::Red, band), Status::Red);  // 80 <= 75 + 7.5
  EXPECT_EQ(classify(*share, 84, Status::Red, band), Status::Amber);
  EXPECT_EQ(classify(*share, 94, Status::Amber, band), Status::Amber);  // 94 <= 90 + 5
  EXPECT_EQ(classify(*share, 96, Status::Amber, band), Status::Green);
}

class BoardTest : public ::testing::Test {
 protected:
  IndicatorState state{catalogue()};
  GoalRollup rollup{catalogue(), RollupPolicy{0.0, 0.5}};
  StatusBoard board{catalogue(), BoardPolicy{30'000}};
  std::uint32_t bamako = *catalogue().post_index("bamako");
  std::uint32_t level = *catalogue().indicator_index("terrorism_threat_level");
  std::size_t goal7 = 6;  // catalogue order

  BoardChanges set_level(double v, std::int64_t at) { return set_level_on(board, v, at); }
  // The same on another board (e.g. one without a minimum duration).
  BoardChanges set_level_on(StatusBoard& b, double v, std::int64_t at) {
    EventView e;
    e.observed_at_ms = at;
    e.number = v;
    state.apply(bamako, level, e, at);
    return b.tick(rollup.compute(state, at, {}, b.last().cells), {}, at);
  }
};

// A goal alarm says what it is now and what it was at worst: red, then amber, then red
// again is one alarm whose level follows the goal and whose worst_level stays red.
TEST_F(BoardTest, AGoalAlarmFollowsItsGoalDownAndKeepsItsWorstLevel) {
  StatusBoard fast(catalogue(), BoardPolicy{0});
  auto tick = [&](double v, std::int64_t at) { return set_level_on(fast, v, at); };
  tick(1, kT0);
  tick(4, kT0 + 1000);
  ASSERT_EQ(fast.alarms().size(), 1u);
  EXPECT_EQ(fast.alarms()[0].level, Status::Red);
  EXPECT_EQ(fast.alarms()[0].worst_level, Status::Red);

  auto down = tick(3, kT0 + 2000);
  ASSERT_EQ(fast.alarms().size(), 1u) << "the same alarm, not a new one";
  const Alarm& a = fast.alarms()[0];
  EXPECT_TRUE(a.open());
  EXPECT_EQ(a.level, Status::Amber);
  EXPECT_EQ(a.worst_level, Status::Red);
  ASSERT_EQ(a.causes.size(), 1u);
  EXPECT_EQ(a.causes[0].status, Status::Amber) << "the causes are those of the moment";
  EXPECT_NE(std::find(down.alarms.begin(), down.alarms.end(), a.id), down.alarms.end()) << "the change is published";

  EXPECT_TRUE(tick(3, kT0 + 3000).alarms.empty()) << "no change, nothing published";
  tick(4, kT0 + 4000);
  EXPECT_EQ(fast.alarms()[0].level, Status::Red);
  tick(1, kT0 + 5000);
  EXPECT_FALSE(fast.alarms()[0].open());
  EXPECT_EQ(fast.alarms()[0].worst_level, Status::Red);
}

TEST_F(BoardTest, MinimumDurationStopsFlapping) {
  ASSERT_EQ(catalogue().goals()[goal7].id, 7);
  set_level(1, kT0);
  EXPECT_EQ(board.goals()[goal7].shown, Status::Green);  // first status shows at once
  // Flapping across the amber threshold every 10 s never holds for 30 s.
  for (int i = 1; i <= 12; ++i) set_level(i % 2 ? 3 : 1, kT0 + i * 10'000);
  EXPECT_EQ(board.goals()[goal7].shown, Status::Green);
  // Held amber for 30 s: shown.
  set_level(3, kT0 + 200'000);
  set_level(3, kT0 + 215'000);
  EXPECT_EQ(board.goals()[goal7].shown, Status::Green);
  auto changes = set_level(3, kT0 + 230'000);
  EXPECT_EQ(board.goals()[goal7].shown, Status::Amber);
  ASSERT_FALSE(changes.statuses.empty());
  EXPECT_EQ(changes.statuses[0].to, Status::Amber);
}

// The score follows the status the board shows, not the raw one still waiting out the
// minimum duration; while the data is away (post silent) it keeps its last health.
TEST_F(BoardTest, TheScoreAgreesWithTheShownStatus) {
  auto band = [](double score) {
    return score >= 70 ? Status::Green : score >= 35 ? Status::Amber : score <= 30 ? Status::Red : Status::Unknown;
  };
  const auto& ind = catalogue().indicators()[level];
  set_level(1, kT0);
  ASSERT_EQ(board.goals()[goal7].shown, Status::Green);
  EXPECT_NEAR(board.goals()[goal7].score, 100, 1e-9) << "the only indicator with data is at baseline";

  set_level(3, kT0 + 10'000);  // raw amber, pending
  ASSERT_EQ(board.last().goals[goal7].status, Status::Amber);
  ASSERT_EQ(board.goals()[goal7].shown, Status::Green);
  EXPECT_EQ(band(board.goals()[goal7].score), Status::Green);
  EXPECT_NEAR(board.goals()[goal7].health, 1 - severity(ind, 3), 1e-9);

  set_level(3, kT0 + 45'000);
  ASSERT_EQ(board.goals()[goal7].shown, Status::Amber);
  EXPECT_NEAR(board.goals()[goal7].score, score_in_band(Status::Amber, 1 - severity(ind, 3)), 1e-9);
  EXPECT_EQ(band(board.pillars()[1].score), Status::Amber) << "defend shows amber";

  // The only post goes silent: raw unknown, the board keeps amber for the minimum duration.
  std::vector<bool> silent(catalogue().posts().size(), false);
  silent[bamako] = true;
  board.tick(rollup.compute(state, kT0 + 50'000, silent, board.last().cells), silent, kT0 + 50'000);
  ASSERT_EQ(board.last().goals[goal7].status, Status::Unknown);
  ASSERT_EQ(board.goals()[goal7].shown, Status::Amber);
  EXPECT_NEAR(board.goals()[goal7].score, score_in_band(Status::Amber, 1 - severity(ind, 3)), 1e-9);
  board.tick(rollup.compute(state, kT0 + 90'000, silent, board.last().cells), silent, kT0 + 90'000);
  EXPECT_EQ(board.goals()[goal7].shown, Status::Unknown);
  EXPECT_EQ(board.goals()[goal7].score, 0) << "unknown has no score (null in the API)";
}

TEST_F(BoardTest, AlarmsAreRaisedWithCauseAcknowledgedAndCleared) {
  StatusBoard fast(catalogue(), BoardPolicy{0});
  auto tick = [&](double v, std::int64_t at) { return set_level_on(fast, v, at); };
  tick(1, kT0);
  EXPECT_TRUE(fast.alarms().empty());
  auto raised = tick(4, kT0 + 1000);
  ASSERT_EQ(fast.alarms().size(), 1u);
  const Alarm& a = fast.alarms()[0];
  EXPECT_EQ(a.kind, AlarmKind::Goal);
  EXPECT_EQ(a.goal, 7);
  EXPECT_EQ(a.level, Status::Red);
  EXPECT_EQ(a.raised_at_ms, kT0 + 1000);
  ASSERT_FALSE(a.causes.empty());
  EXPECT_EQ(a.causes[0].post, "bamako");
  EXPECT_EQ(a.causes[0].indicator, "terrorism_threat_level");
  EXPECT_EQ(a.causes[0].value, 4);
  EXPECT_NE(std::find(raised.alarms.begin(), raised.alarms.end(), a.id), raised.alarms.end());

  auto acked = fast.acknowledge(a.id, "duty officer", "called the post", kT0 + 2000);
  ASSERT_TRUE(acked);
  EXPECT_EQ(acked->acked_by, "duty officer");
  EXPECT_FALSE(fast.acknowledge(999, "x", "", kT0));

  tick(1, kT0 + 3000);
  EXPECT_FALSE(fast.alarms()[0].open());
  EXPECT_EQ(fast.alarms()[0].cleared_at_ms, kT0 + 3000);
  EXPECT_EQ(fast.alarms()[0].acked_by, "duty officer");  // the acknowledgement stays on record
}

TEST(SilentPosts, MissedHeartbeatsMakeAPostSilentAndLowCoverageUnknown) {
  const auto& cat = catalogue();
  IndicatorState state(cat);
  AgentTable agents(cat);
  AgentPresence presence(cat, agents, quiet());
  auto heartbeat = [&](const std::string& post, std::int64_t now) {
    AgentState st;
    st.agent_id = "gw";
    st.post_id = post;
    st.heartbeat_interval_s = 1;
    st.has_metrics = true;
    auto bytes = encode_agent_state(st);
    presence.on_message("postwatch/v1/" + cat.find_post(post)->region + "/" + post + "/gw/heartbeat", bytes, now);
  };
  auto level = *cat.indicator_index("terrorism_threat_level");
  EventView e;
  e.observed_at_ms = kT0;
  e.number = 1;
  std::vector<std::string> posts = {"bamako", "kabul", "caracas"};
  for (const auto& p : posts) {
    state.apply(*cat.post_index(p), level, e, kT0);
    heartbeat(p, kT0);
  }
  LivenessPolicy policy{3, 30'000};
  auto silent = silent_posts(cat, agents, state, kT0 + 2000, policy);
  EXPECT_EQ(std::count(silent.begin(), silent.end(), true), 0);
  // Only bamako keeps its heartbeat going: the other two go silent after 3 intervals.
  heartbeat("bamako", kT0 + 3500);
  silent = silent_posts(cat, agents, state, kT0 + 3600, policy);
  EXPECT_FALSE(silent[*cat.post_index("bamako")]);
  EXPECT_TRUE(silent[*cat.post_index("kabul")]);
  EXPECT_TRUE(silent[*cat.post_index("caracas")]);
  EXPECT_FALSE(silent[*cat.post_index("paris")]);  // never reported: not expected

  GoalRollup rollup(cat, RollupPolicy{0.1, 0.5});
  auto snap = rollup.compute(state, kT0 + 3600, silent);
  const auto& g7 = snap.goals[6];
  EXPECT_EQ(g7.posts_expected, 3u);
  EXPECT_EQ(g7.posts_reporting, 1u);
  EXPECT_TRUE(g7.low_coverage);
  EXPECT_EQ(g7.status, Status::Unknown);  // all green, but a third of the posts: not "green"

  StatusBoard board(cat, BoardPolicy{0});
  board.tick(snap, silent, kT0 + 3600);
  int silent_alarms = 0;
  for (const auto& a : board.alarms()) silent_alarms += a.kind == AlarmKind::PostSilent && a.open();
  EXPECT_EQ(silent_alarms, 2);
}

// A newly born agent's post is not silent before its first heartbeat is due (it once was at
// once, "unheard since the epoch", paging once per post at a fleet restart); missing its
// heartbeats makes it silent, and so does its death, at once.
TEST(SilentPosts, ABirthCountsAsHeardUntilTheHeartbeatsAreMissed) {
  const auto& cat = catalogue();
  IndicatorState state(cat);
  AgentTable agents(cat);
  AgentPresence presence(cat, agents, quiet());
  auto state_message = [&](const std::string& post, bool online, std::int64_t now) {
    AgentState st;
    st.agent_id = "gw";
    st.post_id = post;
    st.online = online;
    st.at_ms = now;
    st.heartbeat_interval_s = 10;
    auto bytes = encode_agent_state(st);
    presence.on_message("postwatch/v1/" + cat.find_post(post)->region + "/" + post + "/gw/state", bytes, now);
  };
  const auto kabul = *cat.post_index("kabul"), bamako = *cat.post_index("bamako");
  state_message("kabul", true, kT0);
  state_message("bamako", true, kT0);
  LivenessPolicy policy{3, 30'000};
  auto silent = silent_posts(cat, agents, state, kT0 + 1, policy);
  EXPECT_FALSE(silent[kabul]) << "born, first heartbeat not yet due";
  EXPECT_FALSE(silent[bamako]);
  StatusBoard board(cat, BoardPolicy{0});
  GoalRollup rollup(cat);
  board.tick(rollup.compute(state, kT0 + 1, silent), silent, kT0 + 1);
  for (const auto& a : board.alarms()) EXPECT_NE(a.kind, AlarmKind::PostSilent) << a.post;

  silent = silent_posts(cat, agents, state, kT0 + 29'000, policy);
  EXPECT_FALSE(silent[kabul]);
  silent = silent_posts(cat, agents, state, kT0 + 30'001, policy);
  EXPECT_TRUE(silent[kabul]) << "three 10 s heartbeats missed";

  state_message("bamako", false, kT0 + 1000);  // death
  silent = silent_posts(cat, agents, state, kT0 + 1001, policy);
  EXPECT_TRUE(silent[bamako]) << "all its agents are offline";
}

// A one-shot sender (emit) sends and leaves: its death does not make its post silent. Only an
// interval it promised (--expect-every-s) does, after the missed-heartbeat count of them; a
// resident agent at the same post still decides for that post.
TEST(SilentPosts, AOneShotSendersDeathIsNotSilence) {
  const auto& cat = catalogue();
  IndicatorState state(cat);
  AgentTable agents(cat);
  AgentPresence presence(cat, agents, quiet());
  auto state_message = [&](const std::string& post, const std::string& agent, bool online, bool one_shot,
                           std::uint32_t interval_s, std::int64_t now) {
    AgentState st;
    st.agent_id = agent;
    st.post_id = post;
    st.online = online;
    st.at_ms = now;
    st.heartbeat_interval_s = interval_s;
    st.one_shot = one_shot;
    presence.on_message("postwatch/v1/" + cat.find_post(post)->region + "/" + post + "/" + agent + "/state",
                        encode_agent_state(st), now);
  };
  const auto caracas = *cat.post_index("caracas"), kabul = *cat.post_index("kabul"), bamako = *cat.post_index("bamako");
  state_message("caracas", "cron", true, true, 0, kT0);  // no promise
  state_message("caracas", "cron", false, true, 0, kT0 + 500);
  state_message("kabul", "cron", true, true, 60, kT0);  // every minute
  state_message("kabul", "cron", false, true, 60, kT0 + 500);
  state_message("bamako", "gw", true, false, 10, kT0);  // a resident agent ...
  state_message("bamako", "cron", true, true, 0, kT0);  // ... and a one-shot sender
  state_message("bamako", "cron", false, true, 0, kT0 + 500);
  LivenessPolicy policy{3, 30'000};

  auto silent = silent_posts(cat, agents, state, kT0 + 1000, policy);
  EXPECT_FALSE(silent[caracas]) << "left by design";
  EXPECT_FALSE(silent[kabul]);
  EXPECT_FALSE(silent[bamako]) << "its resident agent is online";
  silent = silent_posts(cat, agents, state, kT0 + 180'000, policy);
  EXPECT_FALSE(silent[kabul]) << "3 promised minutes not yet missed";
  EXPECT_FALSE(silent[caracas]) << "no promise: never silent from a one-shot sender's absence";
  EXPECT_TRUE(silent[bamako]) << "the resident agent missed its heartbeats";
  silent = silent_posts(cat, agents, state, kT0 + 180'001, policy);
  EXPECT_TRUE(silent[kabul]) << "three promised sends missed";
  state_message("kabul", "cron", true, true, 60, kT0 + 190'000);  // the next cron run
  silent = silent_posts(cat, agents, state, kT0 + 190'001, policy);
  EXPECT_FALSE(silent[kabul]);
}

// Repeated attempts from one post's topic to pass as another post raise one alarm,
// which names the claimed identities, reports further attempts and clears after a
// quiet window. Single slips (a misconfigured agent once) do not.
TEST(TopicMismatchAlarm, RepeatedAttemptsRaiseAndAQuietWindowClears) {
  const auto& cat = catalogue();
  BoardPolicy policy{0};
  policy.mismatch_attempts = 3;
  policy.mismatch_window_ms = 60'000;
  StatusBoard board(cat, policy);
  IndicatorState state(cat);
  GoalRollup rollup(cat);
  std::vector<bool> silent(cat.posts().size(), false);
  auto tick = [&](std::int64_t now) { return board.tick(rollup.compute(state, now, silent), silent, now); };
  auto open_mismatch = [&]() -> const Alarm* {
    for (const auto& a : board.alarms())
      if (a.kind == AlarmKind::TopicMismatch && a.open()) return &a;
    return nullptr;
  };

  board.record_topic_mismatch("kabul", "bamako/a1", kT0 + 65'000);
  board.record_topic_mismatch("kabul", "bamako/a1", kT0 + 66'000);
  tick(kT0 + 67'000);
  EXPECT_EQ(open_mismatch(), nullptr) << "two attempts are below the threshold";

  // Three within the window, but the first is long gone: still no alarm.
  board.record_topic_mismatch("paris", "moscow/x", kT0);
  board.record_topic_mismatch("paris", "moscow/x", kT0 + 70'000);
  board.record_topic_mismatch("paris", "moscow/x", kT0 + 70'500);
  board.record_topic_mismatch("kabul", "kyiv/a9", kT0 + 68'000);
  auto changes = tick(kT0 + 71'000);
  const Alarm* a = open_mismatch();
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->post, "kabul");
  EXPECT_EQ(a->level, Status::Red);
  ASSERT_EQ(a->causes.size(), 2u);  // distinct claimed identities
  EXPECT_EQ(a->causes[0].post, "bamako/a1");
  EXPECT_EQ(a->causes[1].post, "kyiv/a9");
  EXPECT_EQ(a->causes[1].value, 3);  // attempts so far
  EXPECT_EQ(changes.alarms.size(), 1u);
  const auto id = a->id;

  EXPECT_TRUE(tick(kT0 + 72'000).alarms.empty()) << "nothing new: nothing to report";
  board.record_topic_mismatch("kabul", "kyiv/a9", kT0 + 73'000);
  changes = tick(kT0 + 74'000);
  ASSERT_EQ(changes.alarms.size(), 1u);
  EXPECT_EQ(changes.alarms[0], id);
  EXPECT_EQ(board.find_alarm(id)->causes[0].value, 4);

  tick(kT0 + 73'000 + 60'000);
  EXPECT_TRUE(board.find_alarm(id)->open()) << "not yet a whole quiet window";
  changes = tick(kT0 + 73'000 + 60'001);
  EXPECT_FALSE(board.find_alarm(id)->open());
  ASSERT_EQ(changes.alarms.size(), 1u);
}

TEST(Store, PersistsEventsHistoryAndAlarmsAcrossReopen) {
  test::TempDir dir;
  StoreOptions opt{dir.path() / "store.sqlite"};
  opt.commit_interval = std::chrono::milliseconds(5);
  {
    EventStore store(opt, catalogue(), quiet());
    store.start();
    store.register_agent(0, "bamako", "gw-1");
    std::vector<PersistedEvent> events(3);
    for (std::uint64_t i = 0; i < 3; ++i) {
      events[i].agent = 0;
      events[i].post = *catalogue().post_index("bamako");
      events[i].indicator = *catalogue().indicator_index("terrorism_threat_level");
      events[i].seq = i + 1;
      events[i].observed_at_ms = kT0 + static_cast<std::int64_t>(i);
      events[i].received_at_ms = now_utc_ms();  // older than the retention would be pruned
      events[i].number = 2;
    }
    events[2].late = true;
    store.persist(events);
    store.persist(events);  // a duplicate hand-over is ignored by the primary key
    store.record_history({kT0, StatusScope::Goal, "7", Status::Red, 12.5});
    Alarm a;
    a.id = 4;
    a.kind = AlarmKind::Goal;
    a.goal = 7;
    a.level = Status::Red;
    a.raised_at_ms = kT0;
    a.acked_by = "op";
    store.save_alarm(a);
    ASSERT_TRUE(store.flush(std::chrono::seconds(5)));
    EXPECT_EQ(store.pending_events(), 0u);
    auto h = store.query_history(StatusScope::Goal, "7", kT0 - 1, kT0 + 1, 10);
    ASSERT_EQ(h.size(), 1u);
    EXPECT_EQ(h[0].status, Status::Red);
  }
  EventStore store(opt, catalogue(), quiet());
  std::vector<StoredEventRow> rows;
  EXPECT_EQ(store.replay([&](const StoredEventRow& r) { rows.push_back(r); }), 3u);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].agent, "gw-1");
  EXPECT_EQ(rows[0].indicator, "terrorism_threat_level");
  EXPECT_TRUE(rows[2].late);
  auto alarms = store.load_alarms();
  ASSERT_EQ(alarms.size(), 1u);
  EXPECT_EQ(alarms[0].acked_by, "op");
  auto latest = store.latest_history();
  ASSERT_EQ(latest.size(), 1u);
  EXPECT_DOUBLE_EQ(latest[0].score, 12.5);
}

// Agent ids come from the AgentTable, which also holds agents that only sent a birth, so the
// store sees them registered out of order: a lower id registered after a higher one must
// still reach the writer (it once kept a stale copy and stored such events under no name,
// where the primary key swallowed them).
TEST(Store, AgentsRegisteredOutOfOrderKeepTheirEvents) {
  test::TempDir dir;
  StoreOptions opt{dir.path() / "store.sqlite"};
  opt.commit_interval = std::chrono::milliseconds(5);
  auto event = [](std::uint32_t agent, std::uint64_t seq) {
    PersistedEvent e;
    e.agent = agent;
    e.post = *catalogue().post_index("bamako");
    e.indicator = *catalogue().indicator_index("terrorism_threat_level");
    e.seq = seq;
    e.observed_at_ms = e.received_at_ms = now_utc_ms();
    e.number = 2;
    return e;
  };
  {
    EventStore store(opt, catalogue(), quiet());
    store.start();
    store.register_agent(5, "bamako", "gw-5");
    std::vector<PersistedEvent> first{event(5, 1)};
    store.persist(first);
    ASSERT_TRUE(store.flush(std::chrono::seconds(5)));  // the writer has seen ids up to 5
    store.register_agent(2, "bamako", "gw-2");
    std::vector<PersistedEvent> second{event(2, 1), event(2, 2), event(5, 2)};
    store.persist(second);
    ASSERT_TRUE(store.flush(std::chrono::seconds(5)));
    EXPECT_EQ(store.write_errors(), 0u);
  }
  EventStore store(opt, catalogue(), quiet());
  std::map<std::string, int> per_agent;
  EXPECT_EQ(store.replay([&](const StoredEventRow& r) { per_agent[r.post + "/" + r.agent] += 1; }), 4u);
  EXPECT_EQ(per_agent["bamako/gw-2"], 2);
  EXPECT_EQ(per_agent["bamako/gw-5"], 2);
}
