// Flapping (docs/alerting.md, "Flapping"): a subject whose alarms open more than `openings`
// times within the window is said once to flap, nothing more of it is said while it does, and
// once a window passes without an opening its state is said once more.
#include "alerting/flap_detector.hpp"
#include "alerting/notification_router.hpp"
#include "unit/alerting_support.hpp"

#include <gtest/gtest.h>

using namespace postwatch;
using namespace postwatch::aggregator;
using namespace postwatch::test;
using nlohmann::json;

TEST(FlapDetector, FlapsOnTheOpeningPastTheLimitAndEndsAfterAQuietWindow) {
  FlapDetector f({3, 60'000});
  using O = FlapDetector::Opening;
  EXPECT_EQ(f.opened("goal/7", 0), O::Steady);
  EXPECT_EQ(f.opened("goal/7", 10'000), O::Steady);
  EXPECT_EQ(f.opened("goal/7", 20'000), O::Steady);
  EXPECT_EQ(f.opened("goal/8", 21'000), O::Steady);  // subjects count apart
  EXPECT_EQ(f.opened("goal/7", 30'000), O::StartsFlapping);
  EXPECT_TRUE(f.flapping("goal/7"));
  EXPECT_FALSE(f.flapping("goal/8"));
  EXPECT_EQ(f.opened("goal/7", 40'000), O::StillFlapping);
  EXPECT_TRUE(f.ended(99'999).empty());
  EXPECT_EQ(f.ended(100'000), std::vector<std::string>{"goal/7"});  // 60 s after the last opening
  EXPECT_FALSE(f.flapping("goal/7"));
  EXPECT_TRUE(f.ended(200'000).empty());  // once
}

TEST(FlapDetector, OpeningsSpreadWiderThanTheWindowDoNotFlapAndZeroTurnsItOff) {
  FlapDetector f({2, 60'000});
  for (std::int64_t t = 0; t < 600'000; t += 31'000) EXPECT_EQ(f.opened("goal/7", t), FlapDetector::Opening::Steady);
  FlapDetector off({0, 60'000});
  for (int i = 0; i < 10; ++i) EXPECT_EQ(off.opened("goal/7", i), FlapDetector::Opening::Steady);
}

TEST(FlappingConfig, ReadsItAndRefusesBadValuesNamingTheField) {
  ConfigDir d;
  const std::string routes = R"([{"channels":["duty"]}])";
  auto with = [&](const std::string& flapping) {
    auto text = config_text("http://h/", routes);
    return text.substr(0, text.size() - 1) + R"(,"flapping":)" + flapping + "}";
  };
  auto cfg = d.parse(with(R"({"openings":5,"window_s":600})"));
  EXPECT_EQ(cfg.flapping.openings, 5u);
  EXPECT_EQ(cfg.flapping.window_ms, 600'000);
  EXPECT_EQ(d.parse(config_text("http://h/", routes)).flapping.openings, 4u);  // on by default
  EXPECT_NE(d.error(with(R"({"openings":1})")).find("flapping: 'openings' must be 0"), std::string::npos);
  EXPECT_NE(d.error(with(R"({"openings":-3})")).find("flapping: 'openings' must be 0"), std::string::npos);
  EXPECT_NE(d.error(with(R"({"window_s":1})")).find("flapping: 'window_s' must be a number of seconds from 10"),
            std::string::npos);
  EXPECT_NE(d.error(with(R"({"windows":60})")).find("flapping: unknown field 'windows'"), std::string::npos);
  EXPECT_NE(d.error(with("true")).find("flapping: must be an object"), std::string::npos);
}

namespace {
NotificationConfig flapping_config(ConfigDir& d) {
  auto text = config_text("http://h/", R"([{"channels":["duty"],"repeat_interval_s":60}])");
  return d.parse(text.substr(0, text.size() - 1) + R"(,"flapping":{"openings":3,"window_s":600}})");
}

std::vector<std::string> events(const std::vector<NotificationEntry>& entries) {
  std::vector<std::string> out;
  for (const auto& e : entries) out.push_back(e.body.value("event", ""));
  return out;
}
using Events = std::vector<std::string>;
}  // namespace

TEST(Flapping, IsSaidOnceNotOncePerOpeningAndItsEndSaysTheStateItEndedIn) {
  ConfigDir d;
  NotificationRouter r(flapping_config(d));
  std::uint64_t id = 0;
  auto open_and_clear = [&](std::int64_t at) {
    auto a = goal_alarm(++id, 7, "red");
    auto said = events(r.on_alarm(a, at));
    a.open = false;
    auto cleared = events(r.on_alarm(a, at + 1'000));
    said.insert(said.end(), cleared.begin(), cleared.end());
    return said;
  };
  EXPECT_EQ(open_and_clear(0), (Events{"raised", "cleared"}));
  EXPECT_EQ(open_and_clear(10'000), (Events{"raised", "cleared"}));
  EXPECT_EQ(open_and_clear(20'000), (Events{"raised", "cleared"}));
  auto fourth = goal_alarm(++id, 7, "red");
  auto flapping = r.on_alarm(fourth, 30'000);
  ASSERT_EQ(events(flapping), Events{"flapping"});
  EXPECT_EQ(flapping[0].body["flapping"], (json{{"openings", 4}, {"window_s", 600}}));
  EXPECT_TRUE(r.flapping(fourth));
  fourth.open = false;
  EXPECT_TRUE(r.on_alarm(fourth, 31'000).empty());
  for (std::int64_t t = 40'000; t < 100'000; t += 10'000) EXPECT_TRUE(open_and_clear(t).empty()) << t;
  // Another goal is not held.
  EXPECT_EQ(events(r.on_alarm(goal_alarm(100, 8, "red"), 95'000)), Events{"raised"});
  // The last opening (at 90 s) stays open: no reminder while it flaps, ...
  auto last = goal_alarm(++id, 7, "red");
  EXPECT_TRUE(r.on_alarm(last, 100'000).empty());
  EXPECT_TRUE(events(r.due_reminders(300'000)) == Events{"repeat"});  // goal 8's, not goal 7's
  // ... and a window after it, once: flapping ended, open.
  auto ended = r.due_reminders(700'000);
  auto goal7 = std::find_if(ended.begin(), ended.end(), [](const auto& e) { return e.body["goal"] == 7; });
  ASSERT_NE(goal7, ended.end());
  EXPECT_EQ(goal7->body["event"], "flapping_ended");
  EXPECT_EQ(goal7->body["state"], "open");
  EXPECT_FALSE(r.flapping(last));
  // From here it is an alarm like any other.
  last.open = false;
  EXPECT_EQ(events(r.on_alarm(last, 710'000)), Events{"cleared"});
}

TEST(Flapping, AFollowerTracksItWithoutSayingIt) {
  ConfigDir d;
  NotificationRouter r(flapping_config(d));
  for (std::uint64_t id = 1; id <= 5; ++id) {
    auto a = goal_alarm(id, 7, "red");
    EXPECT_TRUE(r.on_alarm(a, static_cast<std::int64_t>(id) * 1'000, false).empty());
    a.open = false;
    EXPECT_TRUE(r.on_alarm(a, static_cast<std::int64_t>(id) * 1'000 + 500, false).empty());
  }
  EXPECT_TRUE(r.flapping(goal_alarm(9, 7, "red")));
  // Leading from here: still flapping, so a new opening is not said.
  EXPECT_TRUE(r.on_alarm(goal_alarm(6, 7, "red"), 7'000).empty());
}
