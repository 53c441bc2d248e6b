#include "story.hpp"

#include <algorithm>
#include <array>

namespace postwatch::sim {

namespace {

// In the fleet first (in this order) when it is smaller than the pool, so every run tells the same story.
constexpr std::array<std::string_view, 8> kFeaturedPosts = {"bamako",  "kabul",  "kyiv",    "caracas",
                                                            "beijing", "moscow", "tripoli", "niamey"};

struct Concern {
  std::string_view post;
  std::vector<std::string_view> indicators;
};

// Standing concerns, after the interim assessment: Sahel terrorist networks growing
// (goals 2, 7), a grown military threat from Russia and arms control under pressure
// with the INF treaty ended (goals 5, 3, 12), economic security weightier than
// foreseen and cyber norms lagging, China (goals 9, 4, 6), and the ring of
// instability (goal 1). Goals 8, 10, 11 and 13 start green, so episodes there show
// up as a change of colour.
const std::vector<Concern>& concerns() {
  static const std::vector<Concern> table = {
      {"bamako", {"terrorism_threat_level", "violent_extremism_level", "water_food_stress_level"}},
      {"niamey", {"terrorism_threat_level", "violent_extremism_level"}},
      {"kabul", {"terrorism_threat_level", "violent_extremism_level", "conflict_early_warning_level"}},
      {"kyiv", {"military_buildup_level", "conflict_early_warning_level"}},
      {"moscow", {"military_buildup_level", "arms_control_treaty_event"}},
      {"beijing", {"cyber_norms_progress", "trade_route_disruption"}},
      {"caracas", {"water_food_stress_level", "conflict_early_warning_level"}},
      {"tripoli", {"conflict_early_warning_level"}},
      {"baghdad", {"terrorism_threat_level", "conflict_early_warning_level"}},
      {"erbil", {"terrorism_threat_level"}},
      {"sanaa", {"conflict_early_warning_level", "water_food_stress_level"}},
      {"tehran", {"arms_control_treaty_event"}},
      {"khartoum", {"conflict_early_warning_level", "water_food_stress_level"}},
      {"juba", {"conflict_early_warning_level", "water_food_stress_level"}},
  };
  return table;
}

// The catalogue positions of those `ids` the model can move: known, and neither
// counts nor text (see signal_model.hpp).
std::vector<std::uint32_t> movable_indicators(const IndicatorCatalogue& catalogue,
                                              const std::vector<std::string_view>& ids) {
  std::vector<std::uint32_t> out;
  for (auto id : ids) {
    auto ix = catalogue.indicator_index(id);
    if (!ix) continue;
    auto kind = catalogue.indicators()[*ix].kind;
    if (kind != ValueKind::Count && kind != ValueKind::Text) out.push_back(*ix);
  }
  return out;
}

}  // namespace

std::vector<std::uint32_t> choose_posts(const IndicatorCatalogue& catalogue, const std::vector<std::uint32_t>& pool,
                                        const std::vector<std::uint32_t>& required, std::size_t n,
                                        std::mt19937_64& rng) {
  std::vector<std::uint32_t> candidates = pool;
  if (candidates.empty()) candidates = catalogue.posts_of_kind(PostKind::Post);  // the ministry is not simulated
  auto in = [](const std::vector<std::uint32_t>& v, std::uint32_t p) {
    return std::find(v.begin(), v.end(), p) != v.end();
  };
  std::vector<std::uint32_t> chosen;
  for (auto p : required)
    if (!in(chosen, p)) chosen.push_back(p);
  for (auto id : kFeaturedPosts)
    if (auto ix = catalogue.post_index(id); ix && in(candidates, *ix) && !in(chosen, *ix) && chosen.size() < n)
      chosen.push_back(*ix);
  std::vector<std::uint32_t> rest;
  for (auto p : candidates)
    if (!in(chosen, p)) rest.push_back(p);
  std::shuffle(rest.begin(), rest.end(), rng);
  for (std::size_t i = 0; chosen.size() < n && i < rest.size(); ++i) chosen.push_back(rest[i]);
  return chosen;
}

std::vector<std::uint32_t> standing_concerns(const IndicatorCatalogue& catalogue, std::string_view post_id) {
  for (const auto& c : concerns())
    if (c.post == post_id) return movable_indicators(catalogue, c.indicators);
  return {};
}

std::vector<EpisodeKind> episode_kinds(const IndicatorCatalogue& catalogue) {
  struct Template {
    std::string_view name;
    std::vector<std::string_view> indicators;
    std::string_view note;
  };
  // Indicators that move together when something happens, together reaching every
  // goal. Only levels, gauges, booleans and shares: they decay once the episode is
  // over, whereas a counted event stays in the aggregator's window (an hour to a
  // week) and would leave the board stuck. displaced_people is left out because
  // hysteresis keeps its amber (10 % of the span from baseline) from ever clearing.
  static const std::vector<Template> templates = {
      {"terrorist attack",
       {"terrorist_attack_severity", "terrorism_threat_level", "violent_extremism_level"},
       "Attack reported in the city; casualties unconfirmed. All embassy staff accounted for."},
      {"cyber attack",
       {"cyber_incident_severity", "cyber_norms_progress"},
       "Intrusion into host-government networks attributed to a state actor; UN cyber talks stall."},
      {"election interference",
       {"election_interference", "civic_space_restriction_level"},
       "Coordinated disinformation ahead of the vote; opposition media restricted."},
      {"military build-up",
       {"military_buildup_level", "nuclear_missile_test", "mission_personnel_shortfall"},
       "Large unannounced exercise near the border; allies delay their mission contributions."},
      {"conflict flare-up",
       {"conflict_early_warning_level", "water_food_stress_level", "women_position_level"},
       "Fighting flared up outside the capital; food prices rising, women's groups report threats."},
      {"migration surge",
       {"irregular_migration_pressure"},
       "Sharp rise in departures towards the EU's external border."},
      {"trade route disruption",
       {"trade_route_disruption"},
       "Undersea cable damaged near the coast; shipping rerouted."},
      {"weapons of mass destruction",
       {"nuclear_missile_test", "chemical_weapon_use", "arms_control_treaty_event"},
       "Missile test announced by the host government; treaty talks suspended."},
      {"legal order under pressure",
       {"civic_space_restriction_level", "multilateral_deadlock_level", "sanctions_implementation_share",
        "accountability_progress"},
       "Security Council vote blocked; NGOs report new restrictions on their work."},
  };
  std::vector<EpisodeKind> kinds;
  for (const auto& t : templates) {
    auto inds = movable_indicators(catalogue, t.indicators);
    if (!inds.empty()) kinds.push_back({std::string(t.name), std::move(inds), std::string(t.note)});
  }
  return kinds;
}

std::string calm_note(std::mt19937_64& rng) {
  static const std::array<std::string_view, 6> notes = {
      "Quiet week; routine consular work.",
      "No change in the local security situation.",
      "Meeting with the host ministry on border cooperation went as planned.",
      "Local elections campaign calm so far.",
      "Regional partners report nothing unusual.",
      "Embassy security drill completed without findings.",
  };
  return std::string(notes[std::uniform_int_distribution<std::size_t>(0, notes.size() - 1)(rng)]);
}

}  // namespace postwatch::sim
