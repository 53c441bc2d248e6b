// The indicator catalogue (catalogue/gbvs.json): pillars, goals, threats,
// regions, posts and indicators, shared by the agent and the aggregator.
#pragma once

#include "postwatch/event.hpp"

#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace postwatch {

// The catalogue every program uses when told none: the installed copy
// (/usr/share/postwatch/gbvs.json, then /usr/local/share/…), else the source tree's
// catalogue/gbvs.json (a developer's build). When none exists, the installed path, so that
// loading it fails naming where it should be.
std::filesystem::path default_catalogue_path();
// How --help describes it.
inline constexpr const char* kDefaultCatalogueHelp =
    "the installed /usr/share/postwatch/gbvs.json (or /usr/local/share/…), else the source tree's catalogue/gbvs.json";

// Thrown by IndicatorCatalogue::load; what() names the file, the entry and the problem.
class CatalogueError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class Direction : std::uint8_t { HigherIsWorse, LowerIsWorse };
enum class Aggregation : std::uint8_t { Max, Sum, Mean, Min };
std::string_view to_string(Aggregation a);

struct GoalWeight {
  int goal = 0;
  double weight = 1.0;
};

struct Pillar {
  std::string id, name, name_nl;
  std::vector<int> goals;
};
struct Goal {
  int id = 0;
  std::string pillar, name, aims;
};
struct Threat {
  std::string id, name;
  std::vector<int> goals;
};
struct Region {
  std::string id, name;
};
// A post reports the local signals; the ministry (kind "ministry" in the catalogue, the
// Hague) reports the national figures the strategy's targets follow. The ministry is not
// counted among the posts a goal expects, nor as a silent post, nor simulated.
enum class PostKind : std::uint8_t { Post, Ministry };
struct Post {
  std::string id, city, country, region, name_on_cover;
  PostKind kind = PostKind::Post;
  bool is_ministry() const { return kind == PostKind::Ministry; }
};
// Who reports an indicator: the posts (it feeds the board) or the ministry (it feeds strategy
// targets only, docs/strategy-progress.md).
enum class Reporter : std::uint8_t { Posts, Ministry };
// Which readings jump the agent's send queue (docs/catalogue.md, "Urgent readings").
enum class Urgency : std::uint8_t { No, AtRed, Always };

struct Indicator {
  std::string id, name, unit, description;
  ValueKind kind = ValueKind::Level;
  double min = 0, max = 0, baseline = 0, amber = 0, red = 0;
  Direction direction = Direction::HigherIsWorse;
  Aggregation aggregation = Aggregation::Max;
  std::int64_t window_s = 0;      // counts: sum over this window; 0 = latest value
  std::vector<GoalWeight> goals;  // empty for a ministry indicator
  std::vector<std::string> threats;
  Reporter reported_by = Reporter::Posts;
  Urgency urgent = Urgency::No;
  bool on_board() const { return reported_by == Reporter::Posts && kind != ValueKind::Text; }
  // Whether a reading of `number` goes on the agent's urgent lane: always, or (AtRed) when the
  // reading itself is at or beyond the red threshold in the indicator's direction.
  bool is_urgent(double number) const;
};

// Transparent hash so lookups by string_view do not allocate.
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
using IdIndex = std::unordered_map<std::string, std::uint32_t, StringHash, std::equal_to<>>;

class IndicatorCatalogue {
 public:
  static IndicatorCatalogue load(const std::filesystem::path& file);
  // `origin` names the source in error messages.
  static IndicatorCatalogue parse(std::string_view json_text, const std::string& origin);

  const std::vector<Pillar>& pillars() const { return pillars_; }
  const std::vector<Goal>& goals() const { return goals_; }
  const std::vector<Threat>& threats() const { return threats_; }
  const std::vector<Region>& regions() const { return regions_; }
  const std::vector<Post>& posts() const { return posts_; }
  const std::vector<Indicator>& indicators() const { return indicators_; }
  // The positions in posts() of every post of this kind (the embassies and consulates, or the ministry).
  std::vector<std::uint32_t> posts_of_kind(PostKind kind) const;

  // Dense indexes (position in the vectors above), or nullopt when unknown.
  std::optional<std::uint32_t> indicator_index(std::string_view id) const;
  std::optional<std::uint32_t> post_index(std::string_view id) const;
  std::optional<std::uint32_t> region_index(std::string_view id) const;
  const Indicator* find_indicator(std::string_view id) const;
  const Post* find_post(std::string_view id) const;
  const Goal* find_goal(int id) const;

  // Empty when post `post` may report indicator `ind` with this value; otherwise why not.
  std::string check_value(const Post& post, const Indicator& ind, ValueKind kind, double number,
                          std::string_view text) const;
  // Empty when the value fits the indicator; otherwise why it does not.
  std::string check_value(const Indicator& ind, ValueKind kind, double number, std::string_view text) const;

  // Content hash of the source text, so agents and aggregator can tell they agree.
  const std::string& fingerprint() const { return fingerprint_; }
  // The file's own "catalogue_version" (0 when it has none): what agents report after a fleet
  // bundle changed their catalogue (docs/fleet.md).
  std::uint32_t version() const { return version_; }

 private:
  std::uint32_t version_ = 0;
  std::vector<Pillar> pillars_;
  std::vector<Goal> goals_;
  std::vector<Threat> threats_;
  std::vector<Region> regions_;
  std::vector<Post> posts_;
  std::vector<Indicator> indicators_;
  IdIndex indicator_ix_, post_ix_, region_ix_;
  std::string fingerprint_;
};

// Whether `id` is a well-formed post/agent/region id: ^[a-z0-9][a-z0-9-]{0,47}$.
bool is_valid_node_id(std::string_view id);

}  // namespace postwatch
