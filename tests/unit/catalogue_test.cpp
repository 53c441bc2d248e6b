#include "postwatch/catalogue.hpp"

#include "support/test_support.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <set>
#include <sstream>
#include <tuple>

using namespace postwatch;
using nlohmann::json;

namespace {

json shipped_catalogue() {
  std::ifstream in(test::catalogue_path());
  return json::parse(in);
}

// Expects parse() to fail with a message containing every fragment.
void expect_error(const json& j, std::initializer_list<std::string> fragments) {
  try {
    IndicatorCatalogue::parse(j.dump(), "bad.json");
    FAIL() << "expected a CatalogueError";
  } catch (const CatalogueError& e) {
    std::string msg = e.what();
    EXPECT_EQ(msg.rfind("bad.json: ", 0), 0u) << msg;
    for (const auto& f : fragments) EXPECT_NE(msg.find(f), std::string::npos) << "'" << f << "' not in: " << msg;
  }
}

}  // namespace

TEST(Catalogue, ShippedCatalogueHasTheStrategy) {
  auto c = IndicatorCatalogue::load(test::catalogue_path());
  ASSERT_EQ(c.goals().size(), 13u);
  ASSERT_EQ(c.pillars().size(), 3u);
  EXPECT_EQ(c.pillars()[0].goals, (std::vector<int>{1, 2, 3, 4}));
  EXPECT_EQ(c.pillars()[1].goals, (std::vector<int>{5, 6, 7, 8, 9, 10}));
  EXPECT_EQ(c.pillars()[2].goals, (std::vector<int>{11, 12, 13}));
  EXPECT_EQ(c.threats().size(), 6u);
  EXPECT_EQ(c.posts_of_kind(PostKind::Post).size(), 142u);
  // The ministry in The Hague reports the national figures the strategy's targets follow.
  ASSERT_EQ(c.posts_of_kind(PostKind::Ministry).size(), 1u);
  EXPECT_EQ(c.posts()[c.posts_of_kind(PostKind::Ministry)[0]].id, "the-hague");
  EXPECT_GE(c.indicators().size(), 30u);
  const Indicator* gdp = c.find_indicator("defence_spending_gdp_percent");
  ASSERT_NE(gdp, nullptr);
  EXPECT_EQ(gdp->reported_by, Reporter::Ministry);
  EXPECT_TRUE(gdp->goals.empty());
  EXPECT_FALSE(gdp->on_board());
  // Every goal is fed by at least two indicators.
  for (const auto& g : c.goals()) {
    int feeding = 0;
    for (const auto& ind : c.indicators())
      for (const auto& gw : ind.goals) feeding += gw.goal == g.id;
    EXPECT_GE(feeding, 2) << "goal " << g.id;
  }
  ASSERT_NE(c.find_post("bamako"), nullptr);
  EXPECT_EQ(c.find_post("bamako")->country, "Mali");
  EXPECT_EQ(c.find_post("atlantis"), nullptr);
  EXPECT_FALSE(c.fingerprint().empty());
}

TEST(Catalogue, ChecksValuesAgainstTheIndicator) {
  auto c = IndicatorCatalogue::load(test::catalogue_path());
  const Indicator* level = c.find_indicator("terrorism_threat_level");
  ASSERT_NE(level, nullptr);
  EXPECT_EQ(c.check_value(*level, ValueKind::Level, 4, ""), "");
  EXPECT_NE(c.check_value(*level, ValueKind::Level, 9, "").find("outside"), std::string::npos);
  EXPECT_NE(c.check_value(*level, ValueKind::Level, 2.5, "").find("whole"), std::string::npos);
  EXPECT_NE(c.check_value(*level, ValueKind::Gauge, 3, "").find("takes a level"), std::string::npos);
  // A ministry figure comes from the ministry only.
  const Indicator* gdp = c.find_indicator("defence_spending_gdp_percent");
  EXPECT_EQ(c.check_value(*c.find_post("the-hague"), *gdp, ValueKind::Gauge, 1.4, ""), "");
  EXPECT_EQ(c.check_value(*c.find_post("bamako"), *gdp, ValueKind::Gauge, 1.4, ""),
            "indicator 'defence_spending_gdp_percent' is reported by the ministry, not by post 'bamako'");
  EXPECT_EQ(c.check_value(*c.find_post("the-hague"), *level, ValueKind::Level, 4, ""), "");
}

TEST(Catalogue, MissingFileNamesTheFile) {
  try {
    IndicatorCatalogue::load("/nonexistent/cat.json");
    FAIL();
  } catch (const CatalogueError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/cat.json"), std::string::npos);
  }
}

TEST(Catalogue, ErrorsNameFileEntryAndProblem) {
  const json good = shipped_catalogue();
  EXPECT_NO_THROW(IndicatorCatalogue::parse(good.dump(), "good.json"));

  {
    std::string broken = good.dump();
    broken.pop_back();
    try {
      IndicatorCatalogue::parse(broken, "bad.json");
      FAIL();
    } catch (const CatalogueError& e) {
      EXPECT_NE(std::string(e.what()).find("bad.json: not valid JSON"), std::string::npos);
    }
  }
  // Found by fuzz_catalogue: a number too large for a double is an out_of_range, not a
  // parse_error, and used to escape as an uncaught nlohmann exception.
  try {
    IndicatorCatalogue::parse(R"({"goals": [9999999999900e0000795448]})", "huge.json");
    FAIL();
  } catch (const CatalogueError& e) {
    EXPECT_NE(std::string(e.what()).find("huge.json: not valid JSON"), std::string::npos);
  }
  json j = good;
  j["indicators"][0]["amber"] = j["indicators"][0]["red"].get<double>() + 1;
  expect_error(j, {"indicators[0]", good["indicators"][0]["id"].get<std::string>(), "amber"});

  j = good;
  j["indicators"][2]["kind"] = "vibe";
  expect_error(j, {"indicators[2]", "kind 'vibe'"});

  j = good;
  j["indicators"][1]["goals"][0]["goal"] = 14;
  expect_error(j, {"indicators[1]", "unknown goal 14"});

  j = good;
  j["indicators"][3]["id"] = j["indicators"][4]["id"];
  expect_error(j, {"indicators[4]", "duplicate indicator id"});

  j = good;
  j["posts"][5]["region"] = "atlantis";
  expect_error(j, {"posts[5]", "unknown region 'atlantis'"});

  j = good;
  j["posts"][7]["id"] = "Not A Slug";
  expect_error(j, {"posts[7]", "id must match"});

  j = good;
  j["posts"][0].erase("city");
  expect_error(j, {"posts[0]", "missing field 'city'"});

  j = good;
  j["pillars"][0]["goals"].push_back(5);
  expect_error(j, {"goal 5", "more than one pillar"});

  j = good;
  j["indicators"][0]["goals"][0]["weight"] = 0;
  expect_error(j, {"indicators[0]", "weight"});

  j = good;
  j["indicators"][0]["reported_by"] = "ministry";
  expect_error(j, {"indicators[0]",
                   "'baseline' is for indicators the posts report; a ministry indicator feeds "
                   "strategy targets, not the board"});
}

TEST(Catalogue, AFieldNamingNoneOfItsValuesIsRefusedListingThem) {
  const json good = shipped_catalogue();
  const std::tuple<const char*, const char*, const char*, const char*> cases[] = {
      {"posts", "kind", "consulate", "kind 'consulate' is not post or ministry"},
      {"indicators", "reported_by", "nobody", "reported_by 'nobody' is not posts or ministry"},
      {"indicators", "direction", "sideways", "direction 'sideways' is not higher_is_worse or lower_is_worse"},
      {"indicators", "aggregation", "median", "aggregation 'median' is not max, sum, mean or min"},
  };
  for (auto [section, field, value, message] : cases) {
    json j = good;
    j[section][0][field] = value;
    expect_error(j, {std::string(section) + "[0]", message});
  }
}

TEST(Catalogue, UrgentMustBeNoAtRedOrAlways) {
  auto j = shipped_catalogue();
  for (auto& ind : j["indicators"])
    if (ind["id"] == "drug_seizures") ind["urgent"] = "soon";
  expect_error(j, {"drug_seizures", "urgent 'soon' is not no, at_red or always"});
  j = shipped_catalogue();
  for (auto& ind : j["indicators"])
    if (ind["id"] == "situation_note") ind["urgent"] = "at_red";
  expect_error(j, {"situation_note", "needs a red threshold"});
}
