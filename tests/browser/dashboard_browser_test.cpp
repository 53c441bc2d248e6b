// The dashboard in a real browser: headless Chromium against the real aggregator
// binary and a real Mosquitto. Chromium is driven with plain command-line flags
// (--dump-dom, --screenshot); no driver, no npm. Without Chromium the tests fail and
// say how to install it (tools/bootstrap), rather than skipping.
#include "postwatch/catalogue.hpp"
#include "postwatch/clock.hpp"
#include "postwatch/topics.hpp"
#include "postwatch/wire_codec.hpp"
#include "support/aggregator_process.hpp"
#include "support/feed_http.hpp"
#include "support/mqtt_probe.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <fstream>
#include <regex>
#include <sstream>

using namespace postwatch;
using namespace postwatch::test;
using namespace std::chrono_literals;

namespace {

std::filesystem::path find_chromium() {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');)
    for (auto* name : {"chromium", "chromium-browser"}) {
      auto p = std::filesystem::path(dir) / name;
      if (::access(p.c_str(), X_OK) == 0) return p;
    }
  return {};
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs Chromium headless on `url` with `mode_flags` (e.g. --dump-dom); stdout goes to
// `out`. Returns the exit status.
int run_chromium(const std::filesystem::path& chromium, const TempDir& dir, const std::string& url,
                 const std::vector<std::string>& mode_flags, const std::filesystem::path& out) {
  std::string cmd = "exec '" + chromium.string() +
                    "' --headless --no-sandbox --disable-gpu --disable-quic --no-first-run "
                    "--disable-background-networking --disable-component-update --disable-sync "
                    "--disable-dev-shm-usage --hide-scrollbars --user-data-dir='" +
                    (dir.path() / "chromium-profile").string() + "' --virtual-time-budget=8000";
  for (const auto& f : mode_flags) cmd += " '" + f + "'";
  cmd += " '" + url + "' > '" + out.string() + "' 2>> '" + (dir.path() / "chromium.log").string() + "'";
  ChildProcess p({"/bin/sh", "-c", cmd}, dir.path() / "chromium-sh.log");
  return p.wait(90s);
}

// The opening tag of the element with this id, or "".
std::string tag_with_id(const std::string& dom, const std::string& id) {
  auto at = dom.find("id=\"" + id + "\"");
  if (at == std::string::npos) return "";
  auto open = dom.rfind('<', at);
  auto close = dom.find('>', at);
  return dom.substr(open, close - open + 1);
}

std::string class_of(const std::string& tag) {
  std::smatch m;
  return std::regex_search(tag, m, std::regex(R"(class="([^"]*)\")")) ? m[1].str() : "";
}

}  // namespace

class DashboardBrowser : public ::testing::Test {
 protected:
  void SetUp() override {
    chromium = find_chromium();
    ASSERT_FALSE(chromium.empty())
        << "Chromium is not installed, so the dashboard cannot be tested in a browser. Install it with "
           "tools/bootstrap (as root), or: apt-get install chromium";
  }
  std::string url(const std::string& suffix = "") {
    return "http://127.0.0.1:" + std::to_string(aggregator.port()) + "/?token=" + TokensFile::kRead + suffix;
  }
  std::string goal_status(int g) {
    auto r = http_call(aggregator.port(), boost::beast::http::verb::get, "/api/v1/goals/" + std::to_string(g),
                       bearer(TokensFile::kRead));
    auto j = r.json();
    return j.is_object() ? j.value("status", "") : "";
  }
  // Goal 7 red (Bamako at the highest terrorism threat level), goal 13 amber, goal 1 green.
  void publish_world() {
    MqttProbe pub(broker.uri(), "browser-publisher");
    pub.publish_event("sub-saharan-africa", "bamako", "terrorism_threat_level", 5);
    pub.publish_event("europe", "athens", "irregular_migration_pressure", 2000, ValueKind::Gauge);
    pub.publish_event("eastern-europe-central-asia", "kyiv", "conflict_early_warning_level", 1);
    ASSERT_TRUE(wait_until([&] { return goal_status(7) == "red" && goal_status(13) == "amber"; }, 10s))
        << goal_status(7) << " " << goal_status(13);
  }

  std::filesystem::path chromium;
  TempDir dir;
  MosquittoBroker broker;
  TokensFile tokens{dir};
  AggregatorProcess aggregator{broker, dir, {"--tokens-file", tokens.path.string()}};
};

TEST_F(DashboardBrowser, ShowsTheRedGoalLiveAndSavesAScreenshot) {
  publish_world();
  auto dom_file = dir.path() / "dom.html";
  ASSERT_EQ(run_chromium(chromium, dir, url(), {"--dump-dom"}, dom_file), 0) << read_file(dir.path() / "chromium.log");
  std::string dom = read_file(dom_file);
  ASSERT_FALSE(dom.empty()) << read_file(dir.path() / "chromium.log");

  std::string goal7 = tag_with_id(dom, "goal-7");
  ASSERT_FALSE(goal7.empty()) << "no goal-7 element in:\n" << dom.substr(0, 3000);
  EXPECT_NE((" " + class_of(goal7) + " ").find(" status-red "), std::string::npos) << goal7;
  EXPECT_NE(class_of(tag_with_id(dom, "goal-13")).find("status-amber"), std::string::npos);
  EXPECT_NE(class_of(tag_with_id(dom, "pillar-defend")).find("status-red"), std::string::npos);
  EXPECT_NE(class_of(tag_with_id(dom, "threat-terrorism")).find("status-red"), std::string::npos);
  // The page went live over the WebSocket (with the ?token= it was given) ...
  EXPECT_NE(tag_with_id(dom, "conn").find("data-state=\"live\""), std::string::npos) << tag_with_id(dom, "conn");
  // ... lists goal 7's alarm with an acknowledge button, and asked for no token.
  EXPECT_NE(dom.find("Goal 7 · Counter-terrorism"), std::string::npos);
  EXPECT_NE(dom.find(">Acknowledge</button>"), std::string::npos);
  EXPECT_EQ(tag_with_id(dom, "token-dialog").find("open"), std::string::npos) << tag_with_id(dom, "token-dialog");

  auto artifacts = postwatch::test::binary_dir() / "test-artifacts";
  std::filesystem::create_directories(artifacts);
  auto png = artifacts / "dashboard.png";
  std::filesystem::remove(png);
  ASSERT_EQ(run_chromium(chromium, dir, url(), {"--screenshot=" + png.string(), "--window-size=1600,1000"},
                         dir.path() / "screenshot.out"),
            0)
      << read_file(dir.path() / "chromium.log");
  std::string image = read_file(png);
  ASSERT_GT(image.size(), 20'000u) << "screenshot missing or blank: " << png;
  EXPECT_EQ(image.substr(1, 3), "PNG");
}

// What a wall screen shows on a bad day, as the demo has it: every goal alarmed (one post's
// security posture at 5 feeds all 13), goals amber and red, three posts gone silent. At
// 1920x1080 everything shows with no text cut and no scrolling; at 1366x768 no text is cut
// and nothing runs off sideways (the page may scroll down). The page's own ?check=layout
// report compares every element's scroll size with its client size. Screenshots are kept.
TEST_F(DashboardBrowser, WallScreenShowsEverythingUncut) {
  using nlohmann::json;
  const std::string kGoal13 = "Robust and balanced integrated border management and control";
  MqttProbe pub(broker.uri(), "layout-publisher");
  pub.publish_event("sub-saharan-africa", "bamako", "terrorism_threat_level", 5);
  pub.publish_event("europe", "athens", "irregular_migration_pressure", 2000, ValueKind::Gauge);
  pub.publish_event("asia", "kuala-lumpur", "post_security_posture", 5);
  for (auto [region, post] :
       {std::pair{"europe", "sofia"}, {"middle-east-north-africa", "tunis"}, {"latin-america-caribbean", "caracas"}}) {
    pub.publish_event(region, post, "conflict_early_warning_level", 2);
    AgentState death;
    death.agent_id = "t1";
    death.post_id = post;
    death.online = false;
    death.at_ms = now_utc_ms();
    pub.publish(std::string("postwatch/v1/") + region + "/" + post + "/t1/state", encode_agent_state(death));
  }
  ASSERT_TRUE(wait_until(
      [&] {
        auto r = http_call(aggregator.port(), boost::beast::http::verb::get, "/api/v1/alarms?state=open",
                           bearer(TokensFile::kRead));
        auto j = r.json();
        return j.is_object() && j["alarms"].size() >= 16u;  // 13 goals + 3 silent posts
      },
      15s));

  auto artifacts = postwatch::test::binary_dir() / "test-artifacts";
  std::filesystem::create_directories(artifacts);
  struct Screen {
    int w, h;
    bool must_fit;  // the whole board without scrolling
  };
  // Headless Chromium's --window-size includes window furniture: the page's viewport is
  // smaller by an amount that varies. Measure it once and size the window so the viewport
  // is exactly the screen.
  auto layout_report = [&](int w, int h, const std::string& size) {
    auto dom_file = dir.path() / ("layout-" + size + ".html");
    const std::string window = "--window-size=" + std::to_string(w) + "," + std::to_string(h);
    if (run_chromium(chromium, dir, url() + "&check=layout", {"--dump-dom", window}, dom_file) != 0) return json();
    std::string dom = read_file(dom_file);
    std::smatch m;
    if (!std::regex_search(dom, m, std::regex(R"(<pre id="layout-report"[^>]*>([^<]*)</pre>)"))) return json();
    std::string text = std::regex_replace(m[1].str(), std::regex("&quot;"), "\"");
    text = std::regex_replace(text, std::regex("&amp;"), "&");
    auto report = json::parse(text, nullptr, false);
    if (report.is_object()) report["dom_has_goal_13_name"] = dom.find(kGoal13) != std::string::npos;
    return report;
  };
  for (auto screen : {Screen{1920, 1080, true}, Screen{1366, 768, false}}) {
    const std::string size = std::to_string(screen.w) + "x" + std::to_string(screen.h);
    auto report = layout_report(screen.w, screen.h, size);
    ASSERT_TRUE(report.is_object()) << "no layout report at " << size << "; " << read_file(dir.path() / "chromium.log");
    int vw = 0, vh = 0;
    ASSERT_EQ(std::sscanf(report["viewport"].get<std::string>().c_str(), "%dx%d", &vw, &vh), 2);
    const int win_w = 2 * screen.w - vw, win_h = 2 * screen.h - vh;
    if (vw != screen.w || vh != screen.h) report = layout_report(win_w, win_h, size);
    ASSERT_TRUE(report.is_object());
    ASSERT_EQ(report["viewport"], size) << "could not size the viewport";
    EXPECT_TRUE(report["problems"].empty()) << size << ": " << report["problems"].dump(1);
    if (screen.must_fit) {
      EXPECT_FALSE(report["page_scrolls"].get<bool>())
          << size << ": page is " << report["page_height"] << " px high; blocks:\n"
          << report["blocks"].dump(1);
    }
    EXPECT_TRUE(report["dom_has_goal_13_name"].get<bool>());

    auto png = artifacts / ("dashboard-" + size + ".png");
    std::filesystem::remove(png);
    // --screenshot renders at the window size itself: the picture is the screen as checked.
    ASSERT_EQ(run_chromium(chromium, dir, url(),
                           {"--screenshot=" + png.string(),
                            "--window-size=" + std::to_string(screen.w) + "," + std::to_string(screen.h)},
                           dir.path() / ("screenshot-" + size + ".out")),
              0);
    EXPECT_GT(std::filesystem::file_size(png), 20'000u) << png;
  }
}

// The Strategy view (docs/strategy-progress.md): the ministry's licence figures put their target
// "moving away"; a corrected figure makes it "achieved", and the page shows the change. It fits the
// wall screen. Screenshots before and after are kept as artefacts.
TEST_F(DashboardBrowser, StrategyViewShowsATargetsStatusChangeAfterAReading) {
  using nlohmann::json;
  MqttProbe pub(broker.uri(), "strategy-publisher");
  const std::int64_t quarter = 91LL * 24 * 3600 * 1000, now = now_utc_ms();
  EventBatch b{"ministry", "the-hague", now, {}};
  std::uint64_t seq = 0;
  for (int q = 7; q >= 0; --q) {  // 96 of 100 in time two years ago, 89 in the last quarter
    b.events.push_back({++seq, now - q * quarter, "arms_export_licences_decided", ValueKind::Count, 100, "", "", {}});
    b.events.push_back(
        {++seq, now - q * quarter, "arms_export_licences_in_time", ValueKind::Count, 89.0 + q, "", "", {}});
  }
  const std::string topic = "postwatch/v1/europe/the-hague/ministry/events";
  pub.publish(topic, encode_batch(b));
  auto status = [&] {
    auto r = http_call(aggregator.port(), boost::beast::http::verb::get, "/api/v1/targets", bearer(TokensFile::kRead));
    auto j = r.json();
    if (!j.is_object()) return std::string();
    for (const auto& t : j["targets"])
      if (t["id"] == "arms_export_decided_in_time") return t["status"].get<std::string>();
    return std::string();
  };
  ASSERT_TRUE(wait_until([&] { return status() == "moving_away"; }, 10s)) << status();

  auto artifacts = postwatch::test::binary_dir() / "test-artifacts";
  std::filesystem::create_directories(artifacts);
  auto shown = [&](const std::string& name) {
    auto dom_file = dir.path() / (name + ".html");
    EXPECT_EQ(run_chromium(chromium, dir, url() + "#/strategy", {"--dump-dom", "--window-size=1920,1080"}, dom_file),
              0);
    auto png = artifacts / (name + ".png");
    std::filesystem::remove(png);
    EXPECT_EQ(run_chromium(chromium, dir, url() + "#/strategy",
                           {"--screenshot=" + png.string(), "--window-size=1920,1080"}, dir.path() / (name + ".out")),
              0);
    EXPECT_GT(std::filesystem::file_size(png), 20'000u) << png;
    return read_file(dom_file);
  };
  auto before = shown("strategy-before");
  auto tag = tag_with_id(before, "target-arms_export_decided_in_time");
  ASSERT_FALSE(tag.empty()) << before.substr(0, 2000);
  EXPECT_NE(tag.find("data-status=\"moving_away\""), std::string::npos) << tag;
  EXPECT_NE(class_of(tag).find("result-moved_away"), std::string::npos) << tag;
  EXPECT_NE(before.find("moving away"), std::string::npos);  // written out, not colour alone
  // Every pillar and the documents' milestones are there.
  EXPECT_NE(before.find("NPT review conference"), std::string::npos);
  EXPECT_FALSE(tag_with_id(before, "strategy-goal-13").empty());
  // The progress report is one click away (GET /api/v1/report, with the page's token).
  EXPECT_FALSE(tag_with_id(before, "report-html").empty());
  EXPECT_FALSE(tag_with_id(before, "report-csv").empty());

  // The ministry corrects the last quarter: 95 of 100 in time.
  EventBatch fix{"ministry", "the-hague", now_utc_ms(), {}};
  fix.events.push_back({++seq, now, "arms_export_licences_in_time", ValueKind::Count, 95, "", "", {}});
  pub.publish(topic, encode_batch(fix));
  ASSERT_TRUE(wait_until([&] { return status() == "achieved"; }, 10s)) << status();
  auto after = shown("strategy-after");
  tag = tag_with_id(after, "target-arms_export_decided_in_time");
  EXPECT_NE(tag.find("data-status=\"achieved\""), std::string::npos) << tag;

  // The drill-down lists the readings.
  auto drill_file = dir.path() / "strategy-drill.html";
  ASSERT_EQ(run_chromium(chromium, dir, url() + "#/target/arms_export_decided_in_time",
                         {"--dump-dom", "--window-size=1920,1080"}, drill_file),
            0);
  auto drill = read_file(drill_file);
  EXPECT_FALSE(tag_with_id(drill, "drill-readings").empty()) << drill.substr(0, 2000);
  EXPECT_NE(drill.find("arms_export_licences_in_time / arms_export_licences_decided"), std::string::npos);

  // On the wall screen (a 1920x1080 viewport: the window is sized for it, as in
  // WallScreenShowsEverythingUncut), nothing is cut and the page does not scroll.
  auto layout = [&](int w, int h) {
    auto file = dir.path() / "strategy-layout.html";
    const std::string window = "--window-size=" + std::to_string(w) + "," + std::to_string(h);
    if (run_chromium(chromium, dir, url() + "&check=layout#/strategy", {"--dump-dom", window}, file) != 0)
      return json();
    std::smatch m;
    auto dom = read_file(file);
    if (!std::regex_search(dom, m, std::regex(R"(<pre id="layout-report"[^>]*>([^<]*)</pre>)"))) return json();
    return json::parse(std::regex_replace(m[1].str(), std::regex("&quot;"), "\""), nullptr, false);
  };
  auto report = layout(1920, 1080);
  ASSERT_TRUE(report.is_object());
  int vw = 0, vh = 0;
  ASSERT_EQ(std::sscanf(report["viewport"].get<std::string>().c_str(), "%dx%d", &vw, &vh), 2);
  if (vw != 1920 || vh != 1080) report = layout(2 * 1920 - vw, 2 * 1080 - vh);
  ASSERT_TRUE(report.is_object());
  ASSERT_EQ(report["viewport"], "1920x1080") << "could not size the viewport";
  EXPECT_TRUE(report["problems"].empty()) << report["problems"].dump(1);
  EXPECT_FALSE(report["page_scrolls"].get<bool>()) << report.dump(1);
}

TEST_F(DashboardBrowser, DrillsDownFromGoalToRegionToPostToIndicators) {
  publish_world();
  auto dom_file = dir.path() / "goal.html";
  ASSERT_EQ(run_chromium(chromium, dir, url("#/goal/7"), {"--dump-dom"}, dom_file), 0);
  std::string dom = read_file(dom_file);
  EXPECT_EQ(tag_with_id(dom, "drill").find("hidden"), std::string::npos) << tag_with_id(dom, "drill");
  EXPECT_NE(class_of(tag_with_id(dom, "region-sub-saharan-africa")).find("status-red"), std::string::npos)
      << dom.substr(dom.find("drill-body"), 2000);
  EXPECT_NE(class_of(tag_with_id(dom, "region-europe")).find("status-unknown"), std::string::npos);

  ASSERT_EQ(run_chromium(chromium, dir, url("#/goal/7/region/sub-saharan-africa"), {"--dump-dom"}, dom_file), 0);
  dom = read_file(dom_file);
  EXPECT_NE(class_of(tag_with_id(dom, "post-bamako")).find("status-red"), std::string::npos)
      << tag_with_id(dom, "post-bamako");

  ASSERT_EQ(
      run_chromium(chromium, dir, url("#/goal/7/region/sub-saharan-africa/post/bamako"), {"--dump-dom"}, dom_file), 0);
  dom = read_file(dom_file);
  ASSERT_FALSE(tag_with_id(dom, "drill-indicators").empty()) << dom.substr(0, 2000);
  const auto catalogue = IndicatorCatalogue::load(catalogue_path());
  const Indicator* ind = catalogue.find_indicator("terrorism_threat_level");
  ASSERT_NE(ind, nullptr);
  EXPECT_NE(dom.find(ind->name), std::string::npos);
}

TEST_F(DashboardBrowser, AsksForATokenWhenItHasNone) {
  auto dom_file = dir.path() / "dom.html";
  ASSERT_EQ(run_chromium(chromium, dir, "http://127.0.0.1:" + std::to_string(aggregator.port()) + "/", {"--dump-dom"},
                         dom_file),
            0);
  std::string dom = read_file(dom_file);
  EXPECT_NE(tag_with_id(dom, "token-dialog").find("open"), std::string::npos) << tag_with_id(dom, "token-dialog");
}

// The Fleet view (#/fleet) from two agents' births: what each runs, and why one rolled its last
// bundle back; without --fleet-keys it says rollouts are off and how to turn them on.
TEST_F(DashboardBrowser, FleetViewShowsWhatTheAgentsRunAndWhyABundleWasRolledBack) {
  MqttProbe pub(broker.uri(), "browser-fleet-publisher");
  for (const auto& [agent, outcome, reason] :
       {std::tuple{"gw-1", FleetReport::Outcome::Applied, ""},
        {"gw-2", FleetReport::Outcome::RolledBack, "no health within the deadline: script probe x: exit status 1"}}) {
    AgentState st;
    st.agent_id = agent;
    st.post_id = "bamako";
    st.at_ms = postwatch::now_utc_ms();
    st.has_fleet = true;
    st.fleet.config_bundle = 3;
    st.fleet.catalogue_version = 1;
    st.fleet.last_outcome = outcome;
    st.fleet.last_version = outcome == FleetReport::Outcome::Applied ? 3 : 4;
    st.fleet.last_reason = reason;
    pub.publish(topics::agent_topic("sub-saharan-africa", "bamako", agent, topics::Channel::State),
                encode_agent_state(st));
  }
  ASSERT_TRUE(wait_until(
      [&] {
        auto r = http_call(aggregator.port(), boost::beast::http::verb::get, "/api/v1/agents/bamako/gw-2",
                           bearer(TokensFile::kRead));
        return r.json().is_object() && r.json().contains("fleet");
      },
      10s));
  auto dom_file = dir.path() / "dom.html";
  ASSERT_EQ(run_chromium(chromium, dir, url("#/fleet"), {"--dump-dom"}, dom_file), 0)
      << read_file(dir.path() / "chromium.log");
  std::string dom = read_file(dom_file);
  EXPECT_EQ(tag_with_id(dom, "fleet-view").find("hidden"), std::string::npos) << tag_with_id(dom, "fleet-view");
  EXPECT_NE(dom.find("2</b> agents take bundles"), std::string::npos) << dom.substr(0, 4000);
  EXPECT_NE(dom.find("rolled their last bundle back"), std::string::npos);
  EXPECT_NE(dom.find("bamako/gw-2 v4: no health within the deadline: script probe x: exit status 1"),
            std::string::npos);
  EXPECT_NE(dom.find("config v3 · catalogue installed (catalogue_version 1)"), std::string::npos);
  EXPECT_NE(dom.find("Rollouts are off: start the aggregator with --fleet-keys"), std::string::npos);
  EXPECT_NE(dom.find("href=\"#/fleet\" aria-current=\"page\""), std::string::npos);
}

// A silence on goal 7's alarm and a maintenance window for kyiv, set through the API: the
// Silences panel lists both with their matchers, and the alarm says it is silenced instead of
// offering to silence it.
TEST_F(DashboardBrowser, ShowsSilencesAndTheAlarmsTheyHold) {
  publish_world();
  auto headers = bearer(TokensFile::kOperator);
  headers["Content-Type"] = "application/json";
  auto set = [&](const nlohmann::json& body) {
    auto r = http_call(aggregator.port(), boost::beast::http::verb::post, "/api/v1/silences", headers, body.dump());
    EXPECT_EQ(r.status, 201) << r.body;
    return r.json().value("id", 0);
  };
  const int silence =
      set({{"match", {{"kind", "goal"}, {"goal", 7}}}, {"comment", "known, on it"}, {"duration_s", 3600}});
  const int window = set(
      {{"match", {{"post", "kyiv"}}}, {"comment", "planned power works"}, {"duration_s", 7200}, {"maintenance", true}});
  auto dom_file = dir.path() / "dom.html";
  ASSERT_EQ(run_chromium(chromium, dir, url(), {"--dump-dom"}, dom_file), 0) << read_file(dir.path() / "chromium.log");
  std::string dom = read_file(dom_file);
  ASSERT_FALSE(tag_with_id(dom, "silence-" + std::to_string(silence)).empty()) << dom.substr(0, 3000);
  ASSERT_FALSE(tag_with_id(dom, "silence-" + std::to_string(window)).empty());
  EXPECT_NE(dom.find("goal 7 · kind goal"), std::string::npos);
  EXPECT_NE(dom.find("post kyiv"), std::string::npos);
  EXPECT_NE(dom.find("planned power works"), std::string::npos);
  EXPECT_NE(class_of(tag_with_id(dom, "silence-" + std::to_string(window))).find("maintenance"), std::string::npos);
  EXPECT_EQ(tag_with_id(dom, "silences-panel").find("hidden"), std::string::npos) << tag_with_id(dom, "silences-panel");
  EXPECT_NE(dom.find("silenced #" + std::to_string(silence)), std::string::npos);
}

// Every alarm notification goes to a webhook that is down: the summary says how many wait, so an
// alarm is never silently not notified (docs/alerting.md). Hidden while none are stuck.
TEST(DashboardBrowserNotifications, UndeliveredNotificationsShowInTheSummary) {
  auto chromium = find_chromium();
  ASSERT_FALSE(chromium.empty()) << "Chromium is not installed (tools/bootstrap installs it)";
  TempDir dir;
  MosquittoBroker broker;
  TokensFile tokens{dir};
  auto secret = dir.path() / "hook.secret";
  std::ofstream(secret) << "browser-test-secret\n";
  std::filesystem::permissions(secret, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  auto config = dir.path() / "notifications.json";
  std::ofstream(config) << R"({"channels":[{"name":"down","kind":"webhook","url":"http://127.0.0.1:)" << free_port()
                        << R"(/hook","secret_file":"hook.secret","timeout_s":1}],
    "routes":[{"match":{},"channels":["down"]}],"retry":{"initial_s":0.2,"max_s":1}})";
  AggregatorProcess aggregator{
      broker, dir, {"--tokens-file", tokens.path.string(), "--notifications", config.string()}};
  const std::string url = "http://127.0.0.1:" + std::to_string(aggregator.port()) + "/?token=" + TokensFile::kRead;
  auto stats = [&] {
    auto r = http_call(aggregator.port(), boost::beast::http::verb::get, "/api/v1/stats", bearer(TokensFile::kRead));
    auto j = r.json();
    return j.is_object() ? j : nlohmann::json::object();
  };
  auto dom_of = [&] {
    auto dom_file = dir.path() / "dom.html";
    EXPECT_EQ(run_chromium(chromium, dir, url, {"--dump-dom"}, dom_file), 0) << read_file(dir.path() / "chromium.log");
    return read_file(dom_file);
  };
  // Nothing raised yet: nothing to say.
  EXPECT_NE(tag_with_id(dom_of(), "t-notify").find(" hidden"), std::string::npos);

  MqttProbe pub(broker.uri(), "browser-publisher");
  pub.publish_event("sub-saharan-africa", "bamako", "terrorism_threat_level", 5);
  ASSERT_TRUE(wait_until(
      [&] {
        auto s = stats();
        return s.value("notifications_failed_attempts", 0) > 0 && s.value("notifications_pending", 0) > 0;
      },
      20s))
      << stats().dump();
  const auto dom = dom_of();
  const auto tag = tag_with_id(dom, "t-notify");
  EXPECT_EQ(tag.find(" hidden"), std::string::npos) << tag;
  auto count_at = dom.find("id=\"n-notify\">");
  ASSERT_NE(count_at, std::string::npos);
  EXPECT_NE(dom.compare(count_at + 14, 1, "0"), 0) << dom.substr(count_at, 40);
  EXPECT_NE(dom.find("notifications undelivered"), std::string::npos);
}
