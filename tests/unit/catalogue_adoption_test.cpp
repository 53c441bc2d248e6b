// A catalogue rolled out to the fleet, as the aggregator adopts it (docs/fleet.md, "A new
// indicator"): what it must keep, the files it leaves for the next start, and a rollout that
// waits for the aggregator to run it.
#include "rollouts/catalogue_adoption.hpp"
#include "rollouts/rollout_desk.hpp"
#include "support/catalogue_edit.hpp"
#include "support/test_support.hpp"

#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include <fstream>
#include <set>

using namespace postwatch;
using namespace postwatch::aggregator;
using namespace postwatch::test;
using nlohmann::json;

namespace {

json installed_json() { return installed_catalogue_json(); }

IndicatorCatalogue parse(const json& j) { return IndicatorCatalogue::parse(j.dump(), "test"); }

// The installed catalogue with one more indicator, at catalogue_version `version`.
json with_new_indicator(std::uint32_t version) {
  return catalogue_with_indicator("border_crossings_closed", "Border crossings closed", version);
}

std::shared_ptr<spdlog::logger> quiet() {
  return std::make_shared<spdlog::logger>("t", std::make_shared<spdlog::sinks::null_sink_mt>());
}

}  // namespace

TEST(CatalogueAdoption, ANewerCatalogueMayAddButNotDropOrChangeWhatAgentsSpooledUnderTheOld) {
  const auto installed = parse(installed_json());
  const std::uint32_t v = installed.version();
  EXPECT_EQ(catalogue_change_problem(installed, parse(with_new_indicator(v + 1))), "");
  EXPECT_EQ(catalogue_change_problem(installed, parse(installed_json())), "");  // the same
  EXPECT_NE(catalogue_change_problem(installed, parse(with_new_indicator(v))).find("raise catalogue_version"),
            std::string::npos);

  json dropped = with_new_indicator(v + 1);
  const std::string gone = dropped["indicators"][1]["id"];
  dropped["indicators"].erase(1);
  EXPECT_NE(catalogue_change_problem(installed, parse(dropped)).find("drops indicator '" + gone + "'"),
            std::string::npos);

  json kind = with_new_indicator(v + 1);
  kind["indicators"][0]["kind"] = "gauge";  // a level until now
  EXPECT_NE(catalogue_change_problem(installed, parse(kind)).find("changes indicator"), std::string::npos);

  json moved = with_new_indicator(v + 1);
  const std::string post = moved["posts"][0]["id"];
  ASSERT_NE(moved["posts"][0]["region"], "europe");
  moved["posts"][0]["region"] = "europe";
  EXPECT_NE(catalogue_change_problem(installed, parse(moved)).find("moves post '" + post + "'"), std::string::npos);

  json without_post = with_new_indicator(v + 1);
  without_post["posts"].erase(0);
  EXPECT_NE(catalogue_change_problem(installed, parse(without_post)).find("drops post '" + post + "'"),
            std::string::npos);
}

TEST(CatalogueAdoption, TheAdoptedCatalogueIsChosenAtTheNextStartWhileItIsNewerAndKeepsTheInstalledOne) {
  TempDir dir;
  const auto installed_text = installed_json().dump();
  const auto installed = parse(installed_json());
  AdoptedCatalogues adopted(dir.path() / "catalogues");
  std::string note;
  EXPECT_TRUE(adopted.choose(installed, note).empty());
  EXPECT_EQ(note, "");  // none adopted: nothing to say

  const auto next_text = with_new_indicator(installed.version() + 1).dump();
  adopted.adopt(next_text, installed.version() + 1, installed_text, installed.version());
  EXPECT_EQ(adopted.choose(installed, note), adopted.adopted_file());
  EXPECT_EQ(note, "");
  const auto chosen = IndicatorCatalogue::load(adopted.adopted_file());
  EXPECT_NE(chosen.find_indicator("border_crossings_closed"), nullptr);
  // Both versions are kept, for the dictionaries of agents a rollout has not reached.
  auto kept = adopted.kept();
  ASSERT_EQ(kept.size(), 2u);
  std::set<std::uint32_t> versions;
  for (const auto& c : kept) versions.insert(c->version());
  EXPECT_EQ(versions, (std::set<std::uint32_t>{installed.version(), installed.version() + 1}));
  EXPECT_FALSE(std::filesystem::exists(adopted.adopted_file().string() + ".tmp"));

  // An installed catalogue as new as the adopted one wins (a package upgrade).
  const auto upgraded = parse(with_new_indicator(installed.version() + 1));
  EXPECT_TRUE(adopted.choose(upgraded, note).empty());
  EXPECT_NE(note.find("not older"), std::string::npos);

  // An adopted file that does not load is passed over with a reason.
  std::ofstream(adopted.adopted_file()) << "{ not json";
  EXPECT_TRUE(adopted.choose(installed, note).empty());
  EXPECT_NE(note.find("does not load"), std::string::npos);
}

TEST(CatalogueAdoption, AWriteThatFailsIsAnErrorNamingTheFile) {
  TempDir dir;
  std::ofstream(dir.path() / "catalogues") << "a file where the directory should be";
  AdoptedCatalogues adopted(dir.path() / "catalogues");
  try {
    adopted.adopt("{}", 2, "", 1);
    FAIL() << "adopted into a file";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("catalogues"), std::string::npos) << e.what();
  }
}

TEST(CatalogueAdoption, ARolloutCarryingANewerCatalogueWaitsUntilTheAggregatorRunsIt) {
  TempDir dir;
  const auto key = SigningKey::from_seed({5});
  const auto installed = parse(installed_json());
  FleetBundle b;
  b.version = 4;
  b.catalogue = with_new_indicator(installed.version() + 1).dump();
  const auto text = sign_bundle(b, key);

  std::map<std::string, FleetReport> reports{{"bamako/a1", FleetReport{}}};
  std::vector<RolloutCandidate> agents{{"sub-saharan-africa", "bamako", "a1", &reports["bamako/a1"]}};
  std::vector<std::string> published;
  auto report_of = [&](const RolloutAgent& a) -> const FleetReport* { return &reports[a.post + "/" + a.agent]; };
  auto publish = [&](const std::string& topic, const std::string&) { published.push_back(topic); };

  int gated = 0;
  {
    RolloutDesk desk({key.public_key()}, dir.path() / "rollouts.json", quiet());
    desk.set_catalogue_gate([&](const FleetBundle&) { ++gated; }, installed.version());
    const auto& plan = desk.create(text, {}, "ops", agents, 0);
    EXPECT_EQ(gated, 1);
    EXPECT_EQ(desk.catalogue_version(plan), installed.version() + 1);
    EXPECT_TRUE(desk.waits_for_catalogue(plan));
    desk.tick(report_of, publish, 0);
    EXPECT_TRUE(published.empty());  // no agent gets it before the aggregator knows its indicators
  }
  // Restarted on the adopted catalogue: the same rollout goes out.
  RolloutDesk desk({key.public_key()}, dir.path() / "rollouts.json", quiet());
  desk.set_catalogue_gate([&](const FleetBundle&) { ++gated; }, installed.version() + 1);
  ASSERT_EQ(desk.rollouts().size(), 1u);
  EXPECT_FALSE(desk.waits_for_catalogue(desk.rollouts().begin()->second));
  desk.tick(report_of, publish, 1000);
  ASSERT_EQ(published.size(), 1u);
  EXPECT_EQ(published[0], "postwatch/v1/fleet/bundle/agent/bamako/a1");

  // A gate that refuses refuses the rollout: nothing is kept of it.
  desk.set_catalogue_gate([](const FleetBundle&) { throw RolloutError(409, "no"); }, installed.version() + 1);
  b.version = 5;
  try {
    desk.create(sign_bundle(b, key), {}, "ops", agents, 2000);
    FAIL();
  } catch (const RolloutError& e) {
    EXPECT_EQ(e.status, 409);
  }
  EXPECT_EQ(desk.rollouts().size(), 1u);
}
