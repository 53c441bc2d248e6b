// Strategy progress end to end (docs/strategy-progress.md): two simulated years of the ministry's
// figures go through the real agent (a file input), a real Mosquitto and the real aggregator,
// and the API, its retained MQTT snapshots and the store say what each target's trajectory is.
#include "postwatch/catalogue.hpp"
#include "progress/target_catalogue.hpp"
#include "support/aggregator_process.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <string>

using namespace postwatch;
using namespace postwatch::test;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::int64_t day(const std::string& date) { return *aggregator::parse_date_ms(date); }

const json* find_target(const json& list, const std::string& id) {
  for (const auto& t : list["targets"])
    if (t["id"] == id) return &t;
  return nullptr;
}

class StrategyProgressE2E : public ::testing::Test {
 protected:
  MosquittoBroker broker;
  TempDir dir;
  AggregatorProcess aggregator{broker, dir};

  fs::path agent_config(const std::string& post, const std::string& agent) {
    auto cfg = dir.path() / (post + "-" + agent + ".json");
    std::ofstream(cfg) << json{{"broker_uri", broker.uri()},
                               {"allow_plaintext", true},
                               {"agent_id", agent},
                               {"post_id", post},
                               {"spool", {{"dir", (dir.path() / (agent + "-spool")).string()}}},
                               {"catalogue_file", catalogue_path().string()}}
                              .dump();
    return cfg;
  }
  // The ministry's agent sends a file of readings and exits once the aggregator confirmed them all.
  void send_readings(const std::vector<json>& lines, const std::string& name) {
    auto file = dir.path() / (name + ".jsonl");
    {
      std::ofstream out(file);
      for (const auto& l : lines) out << l.dump() << "\n";
    }
    ChildProcess agent({(binary_dir() / "agent" / "postwatch-agent").string(), "run", "--config",
                        agent_config("the-hague", "ministry").string(), "--input", file.string()},
                       dir.path() / (name + ".log"));
    ASSERT_EQ(agent.wait(std::chrono::seconds(60)), 0) << agent.log();
  }
  json targets_at(const std::string& at) { return aggregator.get("/api/v1/targets?at=" + at); }
};

json reading(const char* indicator, const std::string& date, double value) {
  return {{"indicator", indicator}, {"value", value}, {"observed_at_ms", day(date)}};
}

}  // namespace

TEST_F(StrategyProgressE2E, TwoYearsOfMinistryFiguresGiveEachTargetItsTrajectory) {
  std::vector<json> lines;
  // Defence spending: 1.20 % of GDP in 2019, 1.30 in 2020, 1.40 in 2021: 0.1 a year where
  // 2 % by the end of 2024 needs 0.15 from there: improving, too slowly.
  lines.push_back(reading("defence_spending_gdp_percent", "2019-01-01", 1.20));
  lines.push_back(reading("defence_spending_gdp_percent", "2020-01-01", 1.30));
  lines.push_back(reading("defence_spending_gdp_percent", "2021-01-01", 1.40));
  // Arms-export licences, quarterly: 100 decided each quarter, those in time falling from 96 to
  // 89: below the "more than 90 %" and moving away from it.
  const char* quarters[] = {"2019-03-31", "2019-06-30", "2019-09-30", "2019-12-31",
                            "2020-03-31", "2020-06-30", "2020-09-30", "2020-12-31"};
  for (int q = 0; q < 8; ++q) {
    lines.push_back(reading("arms_export_licences_decided", quarters[q], 100));
    lines.push_back(reading("arms_export_licences_in_time", quarters[q], 96 - q));
  }
  // Cyber diplomacy: EUR 5 m in each year: achieved.
  lines.push_back(reading("cyber_diplomacy_budget_meur", "2019-12-31", 5));
  lines.push_back(reading("cyber_diplomacy_budget_meur", "2020-12-31", 5));
  send_readings(lines, "two-years");

  // Confirmed means committed: the API reads the store.
  auto t = targets_at("2021-01-01");
  ASSERT_TRUE(t.is_object());
  EXPECT_EQ(t["from"], "2019-01-01");  // two years before at, by default
  const json* gdp = find_target(t, "defence_spending_2_percent");
  ASSERT_NE(gdp, nullptr) << t.dump();
  EXPECT_EQ((*gdp)["status"], "too_slow") << gdp->dump();
  EXPECT_EQ((*gdp)["result"], "lagging");
  EXPECT_DOUBLE_EQ((*gdp)["current"].get<double>(), 1.40);
  EXPECT_NEAR((*gdp)["trend_per_year"].get<double>(), 0.1, 0.01);
  EXPECT_NEAR((*gdp)["required_per_year"].get<double>(), 0.15, 0.01);
  EXPECT_EQ((*gdp)["readings"].size(), 3u);
  EXPECT_TRUE((*gdp)["baseline"].is_null());
  EXPECT_NE((*gdp)["baseline_note"].get<std::string>().find("not in the documents"), std::string::npos);

  const json* licences = find_target(t, "arms_export_decided_in_time");
  ASSERT_NE(licences, nullptr);
  EXPECT_EQ((*licences)["status"], "moving_away") << licences->dump();
  EXPECT_DOUBLE_EQ((*licences)["current"].get<double>(), 89.0);
  ASSERT_EQ((*licences)["readings"].size(), 8u);
  EXPECT_DOUBLE_EQ((*licences)["readings"][0]["value"].get<double>(), 96.0);  // 96 / 100 × 100

  const json* cyber = find_target(t, "cyber_diplomacy_budget");
  ASSERT_NE(cyber, nullptr);
  EXPECT_EQ((*cyber)["status"], "achieved");
  EXPECT_EQ((*cyber)["result"], "positive");

  // Milestones as the interim report left them; an overdue one is lagging.
  const json* npt = find_target(t, "npt_review_conference");
  ASSERT_NE(npt, nullptr);
  EXPECT_EQ((*npt)["status"], "postponed");
  EXPECT_EQ((*npt)["result"], "impossible");

  // Back in mid-2019 the figures were fewer and the licences still above 90 %.
  auto early = targets_at("2019-07-01");
  EXPECT_EQ((*find_target(early, "arms_export_decided_in_time"))["status"], "achieved");
  EXPECT_EQ((*find_target(early, "defence_spending_2_percent"))["readings"].size(), 1u);

  // One goal's progress, beside (never mixed into) its operational status.
  auto g3 = aggregator.get("/api/v1/goals/3/progress?at=2021-01-01");
  ASSERT_TRUE(g3.is_object());
  EXPECT_EQ(g3["goal"], 3);
  EXPECT_TRUE(g3["operational"]["status"].is_string());
  EXPECT_EQ(g3["counts"]["by_status"]["moving_away"], 1) << g3["counts"].dump();
  for (const auto& x : g3["targets"]) EXPECT_EQ(x["goal"], 3);

  // The retained snapshot of goal 3 says the same (it is computed for now, where the licences'
  // trajectory is the same: the last reading is the newest).
  auto sub = run_shell("mosquitto_sub -h 127.0.0.1 -p " + std::to_string(broker.port()) +
                       " -t postwatch/v1/feed/progress/goals/3 -C 1 -W 10");
  ASSERT_EQ(sub.status, 0) << sub.output;
  auto snap = json::parse(sub.output, nullptr, false);
  ASSERT_TRUE(snap.is_object()) << sub.output;
  const json* retained = find_target(snap, "arms_export_decided_in_time");
  ASSERT_NE(retained, nullptr) << sub.output;
  EXPECT_EQ((*retained)["readings"].size(), 8u);

  // The progress report over the API, made off the io thread from the store: every goal, and the
  // defence target under "Lagging".
  auto html = http_get(aggregator.port(), "/api/v1/report?from=2019-01-01&to=2021-01-01");
  ASSERT_EQ(html.status, 200) << html.body.substr(0, 500);
  const auto catalogue = IndicatorCatalogue::load(catalogue_path());
  for (const auto& g : catalogue.goals()) EXPECT_NE(html.body.find(g.name), std::string::npos) << g.name;
  const auto lagging = html.body.find("Lagging");
  ASSERT_NE(lagging, std::string::npos);
  EXPECT_NE(html.body.find("NATO Wales pledge", lagging), std::string::npos);
  EXPECT_NE(html.body.find("<svg"), std::string::npos);
  auto csv = http_get(aggregator.port(), "/api/v1/report?from=2019-01-01&to=2021-01-01&format=csv");
  ASSERT_EQ(csv.status, 200);
  EXPECT_NE(csv.body.find("defence_spending_2_percent"), std::string::npos) << csv.body;
  EXPECT_EQ(http_get(aggregator.port(), "/api/v1/report?format=pdf").status, 400);
  auto backwards = http_get(aggregator.port(), "/api/v1/report?from=2021-01-01&to=2020-01-01");
  EXPECT_EQ(backwards.status, 400);
  EXPECT_NE(backwards.body.find("from must not be after to"), std::string::npos) << backwards.body;
  // The same store and period give the same report.
  EXPECT_EQ(http_get(aggregator.port(), "/api/v1/report?from=2019-01-01&to=2021-01-01").body, html.body);

  // A corrected figure for the last quarter (95 in time) replaces the first: achieved again.
  send_readings({reading("arms_export_licences_in_time", "2020-12-31", 95)}, "correction");
  auto after = targets_at("2021-01-01");
  const json* corrected = find_target(after, "arms_export_decided_in_time");
  EXPECT_EQ((*corrected)["readings"].size(), 8u);
  EXPECT_DOUBLE_EQ((*corrected)["current"].get<double>(), 95.0);
  EXPECT_EQ((*corrected)["status"], "achieved");
  // ... and the retained snapshot follows.
  EXPECT_TRUE(wait_until(
      [&] {
        auto s = run_shell("mosquitto_sub -h 127.0.0.1 -p " + std::to_string(broker.port()) +
                           " -t postwatch/v1/feed/progress -C 1 -W 5");
        auto j = json::parse(s.output, nullptr, false);
        const json* x = j.is_object() ? find_target(j, "arms_export_decided_in_time") : nullptr;
        return x && (*x)["status"] == "achieved";
      },
      std::chrono::seconds(20)));
}

TEST_F(StrategyProgressE2E, BadPeriodsAndGoalsGetClearErrors) {
  auto get = [&](const std::string& target) { return http_get(aggregator.port(), target); };
  auto r = get("/api/v1/targets?at=yesterday");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("at must be a date YYYY-MM-DD or UTC milliseconds, not 'yesterday'"), std::string::npos)
      << r.body;
  r = get("/api/v1/targets?from=2021-01-01&at=2020-01-01");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("from must not be after at"), std::string::npos) << r.body;
  EXPECT_EQ(get("/api/v1/targets?from=2020-02-30").status, 400);
  r = get("/api/v1/goals/14/progress");
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(r.body.find("no goal 14"), std::string::npos) << r.body;
  EXPECT_EQ(get("/api/v1/goals/three/progress").status, 400);
  // With no figure reported yet, every figure is no_data and every milestone as documented.
  auto t = aggregator.get("/api/v1/targets");
  ASSERT_TRUE(t.is_object());
  EXPECT_EQ((*find_target(t, "defence_spending_2_percent"))["status"], "no_data");
  EXPECT_EQ(t["counts"]["targets"].get<int>(), static_cast<int>(t["targets"].size()));
}

TEST_F(StrategyProgressE2E, APostCannotReportAMinistryFigure) {
  // The agent refuses it before spooling: the catalogue says who reports the figure.
  ChildProcess emit(
      {(binary_dir() / "agent" / "postwatch-agent").string(), "emit", "--config", agent_config("bamako", "a1").string(),
       "--indicator", "defence_spending_gdp_percent", "--value", "3.5", "--timeout-s", "10"},
      dir.path() / "emit.log");
  EXPECT_EQ(emit.wait(std::chrono::seconds(20)), 1) << emit.log();
  EXPECT_NE(emit.log().find("reported by the ministry, not by post 'bamako'"), std::string::npos) << emit.log();
  auto t = aggregator.get("/api/v1/targets");
  EXPECT_EQ((*find_target(t, "defence_spending_2_percent"))["readings"].size(), 0u);
}
