// The simulator's scenario files: every shipped one loads, and a wrong one is refused
// with the file, the entry and the problem (tools/simulator/scenario.hpp).
#include "scenario.hpp"

#include "postwatch/catalogue.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <set>

using namespace postwatch;
using namespace postwatch::sim;

namespace {

const IndicatorCatalogue& catalogue() { return test::shipped_catalogue(); }

Scenario parse(const std::string& text) { return parse_scenario(text, "test.json", catalogue()); }

// The message parse() throws, or "" when it accepts the text.
std::string error_of(const std::string& text) {
  try {
    parse(text);
  } catch (const ScenarioError& e) {
    return e.what();
  }
  return "";
}

// A valid scenario with `steps` (a JSON array body) and extra top-level fields.
std::string scenario_with(const std::string& steps, const std::string& extra = "") {
  return R"({"name": "t", "description": "a test")" + extra + R"(, "steps": [)" + steps + "]}";
}

std::string post_id(std::uint32_t p) { return catalogue().posts()[p].id; }
std::filesystem::path scenario_dir() { return postwatch::test::source_dir() / "tools/simulator/scenarios"; }

}  // namespace

TEST(SimScenarioFile, EveryShippedScenarioLoadsUnderItsFileName) {
  std::set<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(scenario_dir())) {
    if (entry.path().extension() != ".json") continue;
    SCOPED_TRACE(entry.path().string());
    Scenario s;
    ASSERT_NO_THROW(s = load_scenario(entry.path(), catalogue()));
    EXPECT_EQ(s.name, entry.path().stem().string()) << "--scenario NAME finds <NAME>.json";
    EXPECT_FALSE(s.description.empty());
    names.insert(s.name);
  }
  for (const char* required : {"baseline", "sahel-escalation", "cyber-wave", "post-silent", "broker-outage"})
    EXPECT_TRUE(names.count(required)) << required;
}

TEST(SimScenarioFile, ShippedScenariosDoWhatTheirNamesSay) {
  const std::filesystem::path dir = scenario_dir();
  auto baseline = load_scenario(dir / "baseline.json", catalogue());
  EXPECT_TRUE(baseline.background_episodes);
  EXPECT_TRUE(baseline.steps.empty());
  EXPECT_TRUE(baseline.posts.empty()) << "every post of the catalogue";

  // The Sahel escalation drives terrorism, extremism, conflict and migration to red at Sahel posts.
  auto sahel = load_scenario(dir / "sahel-escalation.json", catalogue());
  std::set<std::string> red;
  bool bamako_and_niamey = false;
  for (const auto& st : sahel.steps) {
    if (st.action != StepAction::Escalate || st.level != Alert::Red) continue;
    for (auto i : st.indicators) red.insert(catalogue().indicators()[i].id);
    for (auto p : st.posts) bamako_and_niamey |= post_id(p) == "bamako" || post_id(p) == "niamey";
  }
  for (const char* ind : {"terrorism_threat_level", "violent_extremism_level", "conflict_early_warning_level",
                          "irregular_migration_pressure"})
    EXPECT_TRUE(red.count(ind)) << ind;
  EXPECT_TRUE(bamako_and_niamey);

  auto cyber = load_scenario(dir / "cyber-wave.json", catalogue());
  std::set<double> starts;
  std::size_t cyber_posts = 0;
  for (const auto& st : cyber.steps)
    if (st.action == StepAction::Escalate) {
      starts.insert(st.at_s);
      cyber_posts += st.posts.size();
    }
  EXPECT_GE(starts.size(), 4u) << "a wave: several posts hit one after another";
  EXPECT_GE(cyber_posts, 6u);

  auto silent = load_scenario(dir / "post-silent.json", catalogue());
  ASSERT_TRUE(silent.has(StepAction::Silence));
  auto outage = load_scenario(dir / "broker-outage.json", catalogue());
  ASSERT_TRUE(outage.has(StepAction::BrokerOutage));
}

TEST(SimScenarioFile, ReadsEveryFieldAndOrdersStepsByTime) {
  auto s = parse(R"({
    "name": "two-posts", "description": "one line",
    "posts": ["kyiv", "bamako"], "regions": ["oceania"],
    "background_episodes": false, "standing_concerns": false, "repeat_every_s": 100,
    "steps": [
      {"at_s": 30, "action": "silence", "posts": ["kyiv"], "duration_s": 20},
      {"at_s": 5, "action": "escalate", "regions": ["oceania"], "posts": ["bamako"],
       "indicators": ["terrorism_threat_level", "election_interference"], "level": "amber", "duration_s": 60,
       "note": "Tension rising."},
      {"at_s": 30, "action": "broker_outage", "duration_s": 10},
      {"at_s": 90, "action": "note", "note": "Over."}
    ]})");
  EXPECT_EQ(s.name, "two-posts");
  EXPECT_EQ(s.description, "one line");
  EXPECT_FALSE(s.background_episodes);
  EXPECT_FALSE(s.standing_concerns);
  EXPECT_EQ(s.repeat_every_s, 100);
  EXPECT_EQ(s.posts.size(), 2u + 3u) << "kyiv, bamako and the three posts of Oceania";

  ASSERT_EQ(s.steps.size(), 4u);
  EXPECT_EQ(s.steps[0].index, 1u) << "ordered by at_s, keeping the file's index for messages";
  EXPECT_EQ(s.steps[0].action, StepAction::Escalate);
  EXPECT_EQ(s.steps[0].level, Alert::Amber);
  EXPECT_EQ(s.steps[0].regions, std::vector<std::string>{"oceania"});
  ASSERT_EQ(s.steps[0].indicators.size(), 2u);
  EXPECT_EQ(catalogue().indicators()[s.steps[0].indicators[1]].id, "election_interference");
  EXPECT_EQ(s.steps[0].text, "Tension rising.");
  EXPECT_EQ(s.steps[1].index, 0u) << "equal times keep file order";
  EXPECT_EQ(s.steps[1].action, StepAction::Silence);
  EXPECT_EQ(s.steps[2].action, StepAction::BrokerOutage);
  EXPECT_EQ(s.steps[3].action, StepAction::Note);
  EXPECT_EQ(s.steps[3].duration_s, 0);

  auto named = s.named_posts();
  ASSERT_EQ(named.size(), 2u);
  EXPECT_EQ(post_id(named[0]), "bamako");
  EXPECT_EQ(post_id(named[1]), "kyiv");
  EXPECT_EQ(s.length_s(), 90);
}

TEST(SimScenarioFile, DefaultsAreTheEverydayWorld) {
  auto s = parse(scenario_with(""));
  EXPECT_TRUE(s.background_episodes);
  EXPECT_TRUE(s.standing_concerns);
  EXPECT_EQ(s.repeat_every_s, 0);
  EXPECT_TRUE(s.posts.empty());
  EXPECT_TRUE(s.steps.empty());
}

TEST(SimScenarioFile, RefusesWrongFilesNamingFileEntryAndProblem) {
  struct Case {
    std::string text, message;
  };
  const std::string escalate = R"("action": "escalate", "posts": ["bamako"], "indicators": ["terrorism_threat_level"])";
  const std::vector<Case> cases = {
      {"{\"name\": ", "test.json: not valid JSON"},
      {"[]", "test.json: (top level): expected an object"},
      {R"({"description": "d", "steps": []})", "test.json: name: missing field 'name'"},
      {R"({"name": "Sahel Escalation", "description": "d", "steps": []})",
       "test.json: name: 'Sahel Escalation' must match ^[a-z0-9][a-z0-9-]{0,47}$"},
      {R"({"name": "t", "description": "two\nlines", "steps": []})", "test.json: description: must be one line"},
      {R"({"name": "t", "description": "d", "step": []})", "test.json: (top level): unknown field 'step'"},
      {R"({"name": "t", "description": "d"})", "test.json: steps: missing field 'steps'"},
      {scenario_with("", R"(, "posts": ["atlantis"])"), "test.json: posts: unknown post 'atlantis'"},
      {scenario_with("", R"(, "regions": ["sahel"])"), "test.json: regions: unknown region 'sahel'"},
      {scenario_with("", R"(, "background_episodes": "yes")"),
       "test.json: background_episodes: field 'background_episodes' must be true or false"},
      {scenario_with(R"({"at_s": 1, "action": "note", "note": "n"}, {"at_s": 2, "action": "explode"})"),
       "test.json: steps[1]: unknown action 'explode' (escalate, silence, broker_outage or note)"},
      {scenario_with(R"({"action": "note", "note": "n"})"), "test.json: steps[0]: missing field 'at_s'"},
      {scenario_with(R"({"at_s": -1, "action": "note", "note": "n"})"),
       "test.json: steps[0]: field 'at_s' must be at least 0 and at most 1e+06 seconds, not -1"},
      {scenario_with(R"({"at_s": "soon", "action": "note", "note": "n"})"),
       "test.json: steps[0]: field 'at_s' must be a number of seconds"},
      {scenario_with(R"({"at_s": 1, )" + escalate + R"(, "level": "red", "duration_s": 0})"),
       "test.json: steps[0]: field 'duration_s' must be more than 0"},
      {scenario_with(R"({"at_s": 1, )" + escalate + R"(, "level": "orange", "duration_s": 5})"),
       "test.json: steps[0]: field 'level' must be \"amber\" or \"red\", not \"orange\""},
      {scenario_with(R"({"at_s": 1, )" + escalate + R"(, "duration_s": 5})"),
       "test.json: steps[0]: missing field 'level'"},
      {scenario_with(
           R"({"at_s": 1, "action": "escalate", "posts": ["atlantis"], "indicators": ["terrorism_threat_level"],
                        "level": "red", "duration_s": 5})"),
       "test.json: steps[0]: unknown post 'atlantis'"},
      {scenario_with(R"({"at_s": 1, "action": "escalate", "posts": ["bamako"], "indicators": ["cyber_incidents"],
                        "level": "red", "duration_s": 5})"),
       "test.json: steps[0]: indicator 'cyber_incidents' is a count, which would stay in its 3600 s window"},
      {scenario_with(R"({"at_s": 1, "action": "escalate", "posts": ["bamako"], "indicators": ["situation_note"],
                        "level": "red", "duration_s": 5})"),
       "test.json: steps[0]: indicator 'situation_note' is text; use a note step"},
      {scenario_with(R"({"at_s": 1, "action": "escalate", "posts": ["bamako"], "indicators": ["no_such_thing"],
                        "level": "red", "duration_s": 5})"),
       "test.json: steps[0]: unknown indicator 'no_such_thing'"},
      {scenario_with(R"({"at_s": 1, "action": "escalate", "posts": ["bamako"], "indicators": [],
                        "level": "red", "duration_s": 5})"),
       "test.json: steps[0]: field 'indicators' must be a non-empty array of ids"},
      {scenario_with(R"({"at_s": 1, "action": "silence", "duration_s": 5})"),
       "test.json: steps[0]: a silence step needs 'posts' or 'regions'"},
      {scenario_with(R"({"at_s": 1, "action": "silence", "posts": ["kyiv"], "level": "red", "duration_s": 5})"),
       "test.json: steps[0]: unknown field 'level' for a silence step"},
      {scenario_with(R"({"at_s": 1, "action": "broker_outage", "posts": ["kyiv"], "duration_s": 5})"),
       "test.json: steps[0]: unknown field 'posts' for a broker_outage step"},
      {scenario_with(R"({"at_s": 1, "action": "note"})"), "test.json: steps[0]: missing field 'note'"},
      {scenario_with(R"({"at_s": 1, "action": "note", "note": ")" + std::string(300, 'x') + "\"}"),
       "test.json: steps[0]: field 'note' is 300 bytes; a situation note holds at most 256"},
      {scenario_with(R"({"at_s": 10, "action": "broker_outage", "duration_s": 30},
                        {"at_s": 20, "action": "broker_outage", "duration_s": 5})"),
       "test.json: steps[1]: broker outage overlaps the one of steps[0]"},
      {scenario_with(R"({"at_s": 10, "action": "silence", "posts": ["kyiv"], "duration_s": 30})",
                     R"(, "repeat_every_s": 20)"),
       "test.json: repeat_every_s: 20 s is shorter than the timeline: its last step ends at 40 s"},
      {scenario_with(R"({"at_s": 1, "action": "silence", "posts": ["kyiv"], "duration_s": 5})",
                     R"(, "posts": ["bamako"])"),
       "test.json: steps[0]: post 'kyiv' is not among the scenario's posts"},
      {scenario_with(R"({"at_s": 1, "action": "silence", "regions": ["oceania"], "duration_s": 5})",
                     R"(, "posts": ["bamako"])"),
       "test.json: steps[0]: region 'oceania' has no post among the scenario's posts"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    auto message = error_of(c.text);
    EXPECT_NE(message.find(c.message), std::string::npos) << "got: " << (message.empty() ? "(accepted)" : message);
  }
}

TEST(SimScenarioFile, LoadNamesTheFile) {
  test::TempDir dir;
  auto file = dir.path() / "broken.json";
  std::ofstream(file) << R"({"name": "broken", "description": "d", "steps": [{"at_s": 1, "action": "fly"}]})";
  try {
    load_scenario(file, catalogue());
    FAIL() << "accepted";
  } catch (const ScenarioError& e) {
    EXPECT_EQ(std::string(e.what()),
              file.string() + ": steps[0]: unknown action 'fly' (escalate, silence, broker_outage or note)");
  }
  try {
    load_scenario(dir.path() / "missing.json", catalogue());
    FAIL() << "accepted";
  } catch (const ScenarioError& e) {
    EXPECT_EQ(std::string(e.what()), (dir.path() / "missing.json").string() + ": cannot open scenario file");
  }
}

TEST(SimScenarioFile, NamesAreLookedUpInTheDirectoryAndPathsTakenAsGiven) {
  EXPECT_EQ(scenario_file("cyber-wave", "/s"), std::filesystem::path("/s/cyber-wave.json"));
  EXPECT_EQ(scenario_file("my.json", "/s"), std::filesystem::path("my.json"));
  EXPECT_EQ(scenario_file("./mine", "/s"), std::filesystem::path("./mine"));
}

TEST(SimScenarioFile, ListingShowsEveryShippedScenarioWithItsDescription) {
  auto all = list_scenarios(scenario_dir(), catalogue());
  ASSERT_GE(all.size(), 5u);
  for (const auto& s : all) {
    EXPECT_TRUE(s.error.empty()) << s.error;
    EXPECT_FALSE(s.description.empty()) << s.name;
  }
}
