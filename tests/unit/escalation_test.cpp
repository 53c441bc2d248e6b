// Escalation chains (docs/alerting.md, "Escalation"): an alarm nobody acknowledges goes to the
// next step's channels when its time since the alarm was raised comes; acknowledging stops the
// chain, and the channels it reached hear how the alarm ends. Pure routing, no receivers.
#include "alerting/alarm_text.hpp"
#include "alerting/notification_router.hpp"
#include "unit/alerting_support.hpp"

#include <gtest/gtest.h>

#include <algorithm>

using namespace postwatch;
using namespace postwatch::aggregator;
using namespace postwatch::test;
using nlohmann::json;

namespace {

// Channels "duty", "lead" and "head" (one secret), and a route for red alarms to the duty
// officer that escalates to the lead after 60 s and to the head after 300 s.
std::string chain_config(const std::string& escalate = R"([{"after_s":60,"channels":["lead"]},
                                                            {"after_s":300,"channels":["head"]}])") {
  std::string channels;
  for (const char* name : {"duty", "lead", "head"})
    channels += std::string(channels.empty() ? "" : ",") + R"({"name":")" + name +
                R"(","kind":"webhook","url":"http://h/","secret_file":"duty.secret"})";
  return R"({"channels":[)" + channels + R"(],"routes":[{"match":{"level":"red"},"channels":["duty"],"escalate":)" +
         escalate + "}]}";
}

AlarmNotice red_raised_at(std::uint64_t id, std::int64_t raised_at_ms) {
  auto a = goal_alarm(id, 7, "red");
  a.alarm["raised_at_ms"] = raised_at_ms;
  return a;
}

// (channel, event) of each entry, e.g. {"lead", "escalation"}.
std::vector<std::pair<std::string, std::string>> said(const std::vector<NotificationEntry>& entries) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& e : entries) out.emplace_back(e.channel, e.body.value("event", ""));
  std::sort(out.begin(), out.end());
  return out;
}
using Said = std::vector<std::pair<std::string, std::string>>;

}  // namespace

TEST(EscalationConfig, ReadsTheStepsOfARoute) {
  ConfigDir d;
  auto cfg = d.parse(chain_config());
  ASSERT_EQ(cfg.routes.at(0).escalate.size(), 2u);
  EXPECT_EQ(cfg.routes[0].escalate[0].after_ms, 60'000);
  EXPECT_EQ(cfg.routes[0].escalate[1].channels, std::vector<std::string>{"head"});
}

TEST(EscalationConfig, RefusesBadStepsNamingTheEntry) {
  ConfigDir d;
  const std::pair<std::string, std::string> cases[] = {
      {R"([])", "routes[0].escalate: must be a non-empty list"},
      {R"({"after_s":60})", "routes[0].escalate: must be a non-empty list"},
      {R"([{"channels":["lead"]}])", "routes[0].escalate[0]: missing field 'after_s'"},
      {R"([{"after_s":0,"channels":["lead"]}])", "routes[0].escalate[0]: 'after_s' must be a number of seconds"},
      {R"([{"after_s":60}])", "routes[0].escalate[0]: needs a non-empty list \"channels\""},
      {R"([{"after_s":60,"channels":["pager"]}])", "routes[0].escalate[0].channels: unknown channel 'pager'"},
      {R"([{"after_s":60,"channels":["lead"],"to":"x"}])", "routes[0].escalate[0]: unknown field 'to'"},
      {R"([{"after_s":300,"channels":["lead"]},{"after_s":60,"channels":["head"]}])",
       "routes[0].escalate[1]: 'after_s' must be later than the step before's"},
  };
  for (const auto& [escalate, expected] : cases) {
    auto error = d.error(chain_config(escalate));
    EXPECT_NE(error.find("notifications file n.json: " + expected), std::string::npos)
        << escalate << " gave: " << error;
  }
}

TEST(Escalation, GoesStepByStepWhileNobodyAcknowledgesAndTheReachedHearTheAcknowledgement) {
  ConfigDir d;
  NotificationRouter r(d.parse(chain_config()));
  auto a = red_raised_at(1, 1'000);
  EXPECT_EQ(said(r.on_alarm(a, 1'000)), (Said{{"duty", "raised"}}));
  EXPECT_TRUE(r.due_reminders(60'999).empty());
  auto first = r.due_reminders(61'000);
  EXPECT_EQ(said(first), (Said{{"lead", "escalation"}}));
  EXPECT_EQ(first.at(0).body["escalation"], (json{{"step", 1}, {"of", 2}, {"after_s", 60}}));
  EXPECT_NE(alarm_facts_text(first.at(0).body).find("Escalation: step 1 of 2: nobody acknowledged it within 60 s"),
            std::string::npos)
      << alarm_facts_text(first.at(0).body);
  EXPECT_TRUE(r.due_reminders(62'000).empty());  // each step once
  EXPECT_EQ(said(r.due_reminders(301'000)), (Said{{"head", "escalation"}}));
  EXPECT_TRUE(r.due_reminders(900'000).empty());  // the chain has no more steps

  a.acknowledged = true;
  EXPECT_EQ(said(r.on_alarm(a, 910'000)),
            (Said{{"duty", "acknowledged"}, {"head", "acknowledged"}, {"lead", "acknowledged"}}));
  a.open = false;
  EXPECT_EQ(said(r.on_alarm(a, 920'000)), (Said{{"duty", "cleared"}, {"head", "cleared"}, {"lead", "cleared"}}));
}

TEST(Escalation, AnAcknowledgementBeforeTheDeadlineStopsTheChain) {
  ConfigDir d;
  NotificationRouter r(d.parse(chain_config()));
  auto a = red_raised_at(1, 0);
  r.on_alarm(a, 0);
  a.acknowledged = true;
  EXPECT_EQ(said(r.on_alarm(a, 30'000)), (Said{{"duty", "acknowledged"}}));
  EXPECT_TRUE(r.due_reminders(61'000).empty());
  EXPECT_TRUE(r.due_reminders(301'000).empty());
}

TEST(Escalation, AnAlarmBackToAmberLeavesTheRedChainAndItsReachedChannelsHearIt) {
  ConfigDir d;
  NotificationRouter r(d.parse(chain_config()));
  auto a = red_raised_at(1, 0);
  r.on_alarm(a, 0);
  EXPECT_EQ(said(r.due_reminders(60'000)), (Said{{"lead", "escalation"}}));
  a.level = "amber";
  // The red route no longer matches it; the lead it reached hears it fall back.
  EXPECT_EQ(said(r.on_alarm(a, 100'000)), (Said{{"lead", "deescalated"}}));
  EXPECT_TRUE(r.due_reminders(400'000).empty());
}

TEST(Escalation, AFollowerKeepsTheChainSoANewLeaderDoesNotRepeatAStep) {
  ConfigDir d;
  NotificationRouter r(d.parse(chain_config()));
  auto a = red_raised_at(1, 0);
  EXPECT_TRUE(r.on_alarm(a, 0, false).empty());
  EXPECT_TRUE(r.due_reminders(61'000, false).empty());
  // Leading from here: step 1 was its predecessor's to send; step 2 is its own.
  EXPECT_TRUE(r.due_reminders(62'000).empty());
  EXPECT_EQ(said(r.due_reminders(300'000)), (Said{{"head", "escalation"}}));
}

TEST(Escalation, CountsFromWhenTheBoardRaisedItAcrossARestart) {
  ConfigDir d;
  NotificationRouter r(d.parse(chain_config()));
  // Restored at 100 s, raised at 0: step 1 (60 s) went out in the previous run.
  r.remember(red_raised_at(1, 0), 100'000);
  EXPECT_TRUE(r.due_reminders(101'000).empty());
  EXPECT_EQ(said(r.due_reminders(300'000)), (Said{{"head", "escalation"}}));
}

TEST(Escalation, WaitsWhileASilenceHoldsAndGoesWhenItEnds) {
  ConfigDir d;
  NotificationRouter r(d.parse(chain_config()));
  auto a = red_raised_at(1, 0);
  r.on_alarm(a, 0);
  a.silenced = true;
  EXPECT_TRUE(r.on_alarm(a, 10'000).empty());
  EXPECT_TRUE(r.due_reminders(61'000).empty());
  a.silenced = false;
  EXPECT_TRUE(r.on_alarm(a, 120'000).empty());  // unchanged since it was said
  EXPECT_EQ(said(r.due_reminders(121'000)), (Said{{"lead", "escalation"}}));
}
