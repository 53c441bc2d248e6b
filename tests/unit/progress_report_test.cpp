// The progress report (report/): a goal's time in each status and its worst episodes from history
// points, computed by hand; and the whole report from a prepared store: every goal present, the
// lagging 2 % pledge under "Lagging" of goal 5, inline SVG and no external reference, a CSV row
// per target, the same bytes twice, and a clear error for a file that is not a store.
#include "report/progress_report.hpp"
#include "postwatch/catalogue.hpp"
#include "progress/target_catalogue.hpp"
#include "report/report_format.hpp"
#include "store/store_schema.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <fstream>
#include <regex>
#include <sstream>

using namespace postwatch;
using namespace postwatch::aggregator;
namespace fs = std::filesystem;

namespace postwatch::test {

std::int64_t day(const char* date) { return *parse_date_ms(date); }

// A store as the aggregator leaves it, for the period 2019-01-01 to 2021-01-01 (the store's own
// schema, store/store_schema.hpp). On 2020-06-10 every goal has a point a minute:
// all green, except goal 5, red 06:00-10:00 and amber 10:00-12:00. One alarm of goal 5 in the
// period (and one in 2018, before it), one of a silent post. The ministry's figures make the 2 %
// pledge improve too slowly (1.2, 1.3, 1.4 a year apart), the licences decided in time meet their
// 90 %, and the cyber diplomacy budget fall; a defence figure after the period must not count.
void make_report_store(const fs::path& file) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(file.c_str(), &db), SQLITE_OK);
  auto exec = [&](const std::string& sql) {
    char* err = nullptr;
    ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "") << "\n" << sql;
  };
  exec(std::string(kStoreSchema) + "BEGIN;");
  const auto june10 = day("2020-06-10");
  constexpr std::int64_t kMinute = 60'000, kHour = 60 * kMinute;
  for (int goal = 1; goal <= 13; ++goal)
    for (std::int64_t m = 0; m < 24 * 60; ++m) {
      const auto at = june10 + m * kMinute;
      const char* status = "green";
      if (goal == 5 && at >= june10 + 6 * kHour && at < june10 + 10 * kHour) status = "red";
      if (goal == 5 && at >= june10 + 10 * kHour && at < june10 + 12 * kHour) status = "amber";
      exec("INSERT INTO history VALUES(" + std::to_string(at) + ", 'goal', '" + std::to_string(goal) + "', '" + status +
           "', 0.5)");
    }
  auto alarm = [&](int id, const std::string& kind, int goal, const std::string& post, std::int64_t raised,
                   std::int64_t cleared) {
    const std::string body = R"({"id":)" + std::to_string(id) + R"(,"kind":")" + kind + R"(","goal":)" +
                             std::to_string(goal) + R"(,"post":")" + post +
                             R"(","level":"amber","worst_level":"red","raised_at_ms":)" + std::to_string(raised) +
                             R"(,"cleared_at_ms":)" + std::to_string(cleared) +
                             R"(,"causes":[{"post":"vilnius","indicator":"airspace_violations","value":3,)"
                             R"("status":"red"}],"acked_by":"duty-officer","ack_comment":"","acked_at_ms":0})";
    exec("INSERT INTO alarms VALUES(" + std::to_string(id) + ", '" + body + "')");
  };
  alarm(1, "goal", 5, "", day("2018-03-01"), day("2018-03-02"));
  alarm(2, "goal", 5, "", june10 + 6 * kHour + 30'000, june10 + 10 * kHour + 30'000);
  alarm(3, "post_silent", 0, "bamako", june10 + 12 * kHour, june10 + 13 * kHour);
  auto reading = [&](const char* indicator, const char* date, double value) {
    exec(std::string("INSERT INTO strategy_readings VALUES('") + indicator + "', " + std::to_string(day(date)) + ", " +
         std::to_string(value) + ", 'the-hague', 'ministry', 1, " + std::to_string(day(date)) + ")");
  };
  reading("defence_spending_gdp_percent", "2019-01-01", 1.2);
  reading("defence_spending_gdp_percent", "2020-01-01", 1.3);
  reading("defence_spending_gdp_percent", "2021-01-01", 1.4);
  reading("defence_spending_gdp_percent", "2021-06-01", 1.9);
  reading("arms_export_licences_decided", "2019-12-31", 400);
  reading("arms_export_licences_in_time", "2019-12-31", 380);
  reading("arms_export_licences_decided", "2020-12-31", 420);
  reading("arms_export_licences_in_time", "2020-12-31", 399);
  reading("cyber_diplomacy_budget_meur", "2019-12-31", 2.0);
  reading("cyber_diplomacy_budget_meur", "2020-12-31", 1.5);
  exec("COMMIT");
  sqlite3_close(db);
}

}  // namespace postwatch::test

namespace {

using test::day;
constexpr std::int64_t kMinute = 60'000, kHour = 60 * kMinute;

const IndicatorCatalogue& catalogue() { return test::shipped_catalogue(); }
const TargetCatalogue& targets() {
  static const TargetCatalogue t = TargetCatalogue::load(test::catalogue_path(), catalogue());
  return t;
}

// The text between the element with this id and its closing tag `close` (no nesting of it).
std::string element(const std::string& html, const std::string& id, const std::string& close) {
  const auto at = html.find("id=\"" + id + "\"");
  if (at == std::string::npos) return "";
  const auto end = html.find(close, at);
  return html.substr(at, end == std::string::npos ? std::string::npos : end - at);
}

class ProgressReportTest : public ::testing::Test {
 protected:
  void SetUp() override { test::make_report_store(store()); }
  fs::path store() const { return dir_.path() / "postwatch.sqlite"; }
  ProgressReport report() const {
    return make_progress_report(catalogue(), targets(),
                                load_report_data(store(), catalogue(), day("2019-01-01"), day("2021-01-01")));
  }

 private:
  test::TempDir dir_;
};

}  // namespace

TEST(GoalHistory, TimeInEachStatusHoldsEachPointUntilTheNextForAtMostFiveMinutes) {
  const auto t0 = day("2020-06-10");
  GoalHistoryBuilder b(t0, t0 + 2 * kHour);
  b.add({t0 - 2 * kMinute, BoardState::Green});     // before the period: says how it began
  b.add({t0 + 10 * kMinute, BoardState::Green});    // 12 min after: green to 3, 3-10 unrecorded
  b.add({t0 + 20 * kMinute, BoardState::Red});      // 10-15 green, 15-20 unrecorded
  b.add({t0 + 21 * kMinute, BoardState::Amber});    // red 20-21
  b.add({t0 + 24 * kMinute, BoardState::Unknown});  // amber 21-24
  b.add({t0 + 100 * kMinute, BoardState::Green});   // unknown 24-29, unrecorded 29-100; then 100-105 green
  const auto s = b.finish();                        // 105-120 unrecorded
  EXPECT_EQ(s.time_in(BoardState::Green), (3 + 5 + 5) * kMinute);
  EXPECT_EQ(s.time_in(BoardState::Red), 1 * kMinute);
  EXPECT_EQ(s.time_in(BoardState::Amber), 3 * kMinute);
  EXPECT_EQ(s.time_in(BoardState::Unknown), 5 * kMinute);
  EXPECT_EQ(s.time_in(BoardState::Unrecorded), (7 + 5 + 71 + 15) * kMinute);
  ASSERT_EQ(s.episodes, 1u);
  EXPECT_EQ(s.worst_episodes[0].start_ms, t0 + 20 * kMinute);
  EXPECT_EQ(s.worst_episodes[0].end_ms, t0 + 24 * kMinute);
  EXPECT_EQ(s.worst_episodes[0].worst, BoardState::Red);
  EXPECT_FALSE(s.worst_episodes[0].ongoing);
  ASSERT_EQ(s.strip.size(), kStripCells);  // 30 s a cell: the red minute is cells 40 and 41
  EXPECT_EQ(s.strip[40], BoardState::Red);
  EXPECT_EQ(s.strip[41], BoardState::Red);
  EXPECT_EQ(s.strip[0], BoardState::Green);
  EXPECT_EQ(s.strip[239], BoardState::Unrecorded);
}

TEST(GoalHistory, EpisodesRankRedFirstThenLongestAndOneStillOpenIsOngoing) {
  const auto t0 = day("2020-06-10");
  GoalHistoryBuilder b(t0, t0 + 60 * kMinute);
  auto run = [&](int from_min, int to_min, BoardState s) {
    for (int m = from_min; m < to_min; ++m) b.add({t0 + m * kMinute, s});
  };
  run(0, 5, BoardState::Green);
  run(5, 25, BoardState::Amber);  // 20 min amber
  run(25, 30, BoardState::Green);
  run(30, 32, BoardState::Red);  // 2 min red
  run(32, 40, BoardState::Green);
  run(40, 60, BoardState::Red);  // 20 min red, to the end
  const auto s = b.finish();
  ASSERT_EQ(s.episodes, 3u);
  EXPECT_EQ(s.worst_episodes[0].start_ms, t0 + 40 * kMinute);
  EXPECT_TRUE(s.worst_episodes[0].ongoing);
  EXPECT_EQ(s.worst_episodes[1].start_ms, t0 + 30 * kMinute);
  EXPECT_EQ(s.worst_episodes[2].worst, BoardState::Amber);
  EXPECT_EQ(s.worst_episodes[2].duration_ms(), 20 * kMinute);
  std::int64_t total = 0;
  for (auto t : s.time_ms) total += t;
  EXPECT_EQ(total, 60 * kMinute);
}

TEST(GoalHistory, NoPointsIsAllUnrecorded) {
  GoalHistoryBuilder b(0, kHour);
  const auto s = b.finish();
  EXPECT_EQ(s.time_in(BoardState::Unrecorded), kHour);
  EXPECT_EQ(s.episodes, 0u);
}

TEST_F(ProgressReportTest, TheStoreGivesEachGoalsTimesAlarmsAndTheFiguresOfThePeriod) {
  const auto r = report();
  ASSERT_EQ(r.data.goals.size(), 13u);
  const auto& g5 = r.data.goals.at(5);
  EXPECT_EQ(g5.history.time_in(BoardState::Red), 4 * kHour);
  EXPECT_EQ(g5.history.time_in(BoardState::Amber), 2 * kHour);
  EXPECT_EQ(g5.history.time_in(BoardState::Green), 18 * kHour + 4 * kMinute);  // the 23:59 point holds 5 min
  ASSERT_EQ(g5.history.worst_episodes.size(), 1u);
  EXPECT_EQ(g5.history.worst_episodes[0].duration_ms(), 6 * kHour);
  ASSERT_EQ(g5.alarms.size(), 1u);  // the 2018 one is before the period
  EXPECT_EQ(g5.alarms[0].id, 2u);
  EXPECT_EQ(r.data.goals.at(1).history.time_in(BoardState::Red), 0);
  ASSERT_EQ(r.data.other_alarms.size(), 1u);
  EXPECT_EQ(r.data.other_alarms[0].post, "bamako");
  EXPECT_EQ(r.data.readings.at("defence_spending_gdp_percent").size(), 3u);  // not the one after the period

  const auto* pledge = r.progress.find("defence_spending_2_percent");
  ASSERT_NE(pledge, nullptr);
  EXPECT_EQ(pledge->status, "too_slow");
  EXPECT_EQ(pledge->result, ResultKind::Lagging);
  EXPECT_EQ(r.progress.find("arms_export_decided_in_time")->result, ResultKind::Positive);
  EXPECT_EQ(r.progress.find("cyber_diplomacy_budget")->result, ResultKind::MovedAway);
}

TEST_F(ProgressReportTest, TheHtmlHasEveryGoalAndTheLaggingPledgeUnderLaggingOfGoal5) {
  const auto html = render_report_html(report());
  for (const auto& g : catalogue().goals())
    EXPECT_NE(html.find(report::html_escaped(g.name)), std::string::npos) << "goal " << g.id << " missing";
  for (const auto& t : targets().targets())
    EXPECT_NE(html.find("-target-" + t.id + "\""), std::string::npos) << "target " << t.id << " missing";

  const auto goal5 = element(html, "military-goal-5", "</article>");
  ASSERT_FALSE(goal5.empty());
  const auto at = goal5.find("<section class=\"result result-lagging\"><h5>Lagging</h5>");
  ASSERT_NE(at, std::string::npos) << "no Lagging section in goal 5";
  const auto section = goal5.substr(at, goal5.find("</section>", at) - at);
  EXPECT_NE(section.find("id=\"military-goal-5-target-defence_spending_2_percent\""), std::string::npos);
  EXPECT_NE(section.find("improving, too slowly"), std::string::npos);
  const auto positive = goal5.find("<h5>Positive results</h5>");  // goal 5's milestones done
  ASSERT_NE(positive, std::string::npos);
  EXPECT_EQ(goal5.substr(positive, goal5.find("</section>", positive) - positive).find("defence_spending_2_percent"),
            std::string::npos);

  // Goal 5's operational picture: the red episode, 4 h of red, its alarm.
  EXPECT_NE(goal5.find("2020-06-10 06:00"), std::string::npos);
  EXPECT_NE(goal5.find("#2</td>"), std::string::npos);
  // Goal 11 is in no result area and still has its section.
  EXPECT_NE(html.find("id=\"none-goal-11\""), std::string::npos);
}

TEST_F(ProgressReportTest, TheHtmlIsSelfContainedWithInlineSvg) {
  const auto html = render_report_html(report());
  EXPECT_NE(html.find("<svg class=\"chart\""), std::string::npos);
  EXPECT_NE(html.find("<svg class=\"strip\""), std::string::npos);
  EXPECT_EQ(html.find("http://"), std::string::npos);
  EXPECT_EQ(html.find("https://"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("<link"), std::string::npos);
  const std::regex reference(R"re((src|href)\s*=\s*"([^"]*)")re");
  for (auto it = std::sregex_iterator(html.begin(), html.end(), reference); it != std::sregex_iterator(); ++it)
    EXPECT_EQ((*it)[2].str().substr(0, 1), "#") << "a reference out of the document: " << (*it)[0].str();
}

TEST_F(ProgressReportTest, TheCsvHasARowPerTargetWithItsFigures) {
  const auto csv = render_report_csv(report());
  std::istringstream in(csv);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), targets().targets().size() + 1);
  EXPECT_EQ(lines[0],
            "id,goal,threats,kind,status,result,baseline,current,target,by,progress,trend_per_year,required_per_year");
  // No baseline; 1.4 now, 2 by 2024-12-31. The trend: +0.1 a calendar year, the least-squares
  // slope per 365.25 days over 2019 (365 days) and 2020 (366); needed: 0.6 in the 1460 days left.
  EXPECT_NE(csv.find("\ndefence_spending_2_percent,5,military,value,too_slow,lagging,,1.4,2,2024-12-31,,0.0999315,"
                     "0.150103\n"),
            std::string::npos)
      << csv;
  EXPECT_NE(csv.find("\nnpt_review_conference,3,cbrn,milestone,postponed,impossible,,,,2020-12-31,,,\n"),
            std::string::npos)
      << csv;
  for (std::size_t i = 0; i < targets().targets().size(); ++i)  // in catalogue order
    EXPECT_EQ(lines[i + 1].substr(0, lines[i + 1].find(',')), targets().targets()[i].id);
}

TEST_F(ProgressReportTest, TheSameStoreAndPeriodGiveTheSameBytes) {
  const auto first = report(), second = report();
  EXPECT_EQ(render_report_html(first), render_report_html(second));
  EXPECT_EQ(render_report_csv(first), render_report_csv(second));
  // A different period is a different report: the comparison above could fail.
  const auto other = make_progress_report(catalogue(), targets(),
                                          load_report_data(store(), catalogue(), day("2020-01-01"), day("2021-01-01")));
  EXPECT_NE(render_report_html(first), render_report_html(other));
}

TEST(ProgressReportStore, AFileThatIsNotAStoreIsRefusedNamingIt) {
  test::TempDir dir;
  auto refused = [&](const fs::path& file) -> std::string {
    try {
      load_report_data(file, catalogue(), 0, kHour);
    } catch (const StoreOpenError& e) {
      return e.what();
    }
    return "";
  };
  const auto missing = dir.path() / "missing.sqlite";
  EXPECT_EQ(refused(missing), missing.string() + ": no such store file");
  const auto text = dir.path() / "notes.txt";
  std::ofstream(text) << "not a database, but long enough to look like one to SQLite's header check\n";
  EXPECT_NE(refused(text).find(text.string() + ": not a store"), std::string::npos) << refused(text);
  const auto empty = dir.path() / "empty.sqlite";
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(empty.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE other(x)", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  EXPECT_EQ(refused(empty), empty.string() + ": not a Postwatch store (it has no history table)");
  // The aggregator's --data-dir names the store in it.
  EXPECT_EQ(refused(dir.path()), (dir.path() / "postwatch.sqlite").string() + ": no such store file");
}
