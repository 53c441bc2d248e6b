// A named scenario, read from a JSON file (tools/simulator/scenarios/, docs/simulator.md):
// which posts take part, whether random episodes run, and a timeline of steps —
// escalate indicators, silence a post, take the broker away, file a note.
#pragma once

#include "signal_model.hpp"

#include "postwatch/catalogue.hpp"

#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace postwatch::sim {

// what() names the file, the entry ("steps[3]", or a top-level field) and the problem.
class ScenarioError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class StepAction : std::uint8_t { Escalate, Silence, BrokerOutage, Note };
std::string_view to_string(StepAction action);  // as written in the file: "escalate", ...

struct ScenarioStep {
  std::size_t index = 0;  // position in the file's "steps", for messages
  StepAction action = StepAction::Note;
  double at_s = 0;                        // seconds after the timeline starts
  double duration_s = 0;                  // 0 for notes
  std::vector<std::uint32_t> posts;       // catalogue positions named by "posts"
  std::vector<std::string> regions;       // region ids: every post of the fleet in them too
  std::vector<std::uint32_t> indicators;  // escalate: catalogue positions
  Alert level = Alert::Red;               // escalate
  std::string text;                       // escalate: the note the posts file; note: the note
  double end_s() const { return at_s + duration_s; }
};

struct Scenario {
  std::string name;
  std::string description;  // one line
  std::string origin;       // the file, for messages
  // The posts the fleet is drawn from (catalogue positions, catalogue order); empty: every post.
  std::vector<std::uint32_t> posts;
  bool background_episodes = true;  // a random episode somewhere every 20-40 s
  bool standing_concerns = true;    // the interim assessment's concerns rest at amber
  double repeat_every_s = 0;        // 0: the timeline runs once
  std::vector<ScenarioStep> steps;  // ordered by at_s (file order among equal times)

  // The posts the steps name, in order of first mention: the fleet always includes them.
  std::vector<std::uint32_t> named_posts() const;
  double length_s() const;  // when the last step ends
  bool has(StepAction action) const;
};

// Reads and checks a scenario against the catalogue; throws ScenarioError naming
// `origin` (parse) or the file (load).
Scenario parse_scenario(std::string_view json_text, const std::string& origin, const IndicatorCatalogue& catalogue);
Scenario load_scenario(const std::filesystem::path& file, const IndicatorCatalogue& catalogue);

// `name_or_file` is a file when it holds a '/' or ends in ".json", else <dir>/<name>.json.
std::filesystem::path scenario_file(const std::string& name_or_file, const std::filesystem::path& dir);

struct ScenarioListing {
  std::filesystem::path file;
  std::string name, description;
  std::string error;  // set when the file does not load
};
// Every *.json in `dir`, by file name.
std::vector<ScenarioListing> list_scenarios(const std::filesystem::path& dir, const IndicatorCatalogue& catalogue);

}  // namespace postwatch::sim
