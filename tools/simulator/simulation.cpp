#include "simulation.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace postwatch::sim {

namespace {

std::int64_t uniform_ms(std::mt19937_64& rng, int lo_s, int hi_s) {
  return std::uniform_int_distribution<std::int64_t>(lo_s * 1000LL, hi_s * 1000LL)(rng);
}

std::string join_ids(const IndicatorCatalogue& catalogue, const std::vector<std::uint32_t>& indicators) {
  std::string out;
  for (auto i : indicators) out += (out.empty() ? "" : ", ") + catalogue.indicators()[i].id;
  return out;
}

// Quiet posts file a situation note about every two minutes.
constexpr double kCalmNotesPerSecond = 1.0 / 120;

}  // namespace

Simulation::Simulation(const IndicatorCatalogue& catalogue, const std::vector<std::uint32_t>& posts,
                       const SimulationOptions& options, Fleet& fleet, std::shared_ptr<spdlog::logger> log)
    : catalogue_(catalogue),
      fleet_(fleet),
      options_(options),
      log_(std::move(log)),
      kinds_(episode_kinds(catalogue)),
      rng_(options.seed),
      spool_indicator_(catalogue.indicator_index("agent_spool_depth")),
      note_indicator_(catalogue.indicator_index("situation_note")) {
  for (std::uint32_t p : posts) {
    // Each post its own stream, so adding posts does not change the others' numbers.
    std::seed_seq seq{options.seed, static_cast<std::uint64_t>(p)};
    std::mt19937_64 post_rng(seq);
    // A random start in the rate budget, so the agents do not all report on the same tick.
    std::uniform_real_distribution<double> start_budget(0, 1);
    agents_.push_back({posts_.size(), start_budget(post_rng)});
    SimPost sp{p, PostSignals(catalogue, post_rng()), false};
    for (std::size_t k = 1; k < options.agents_per_post; ++k)
      agents_.push_back({posts_.size(), start_budget(post_rng)});
    if (options.standing_concerns)
      for (auto ind : standing_concerns(catalogue, catalogue.posts()[p].id)) {
        sp.signals.raise_posture(ind, Alert::Amber);
        sp.troubled = true;
      }
    posts_.push_back(std::move(sp));
  }
}

std::vector<std::size_t> Simulation::agents_of(std::size_t post) const {
  std::vector<std::size_t> out;
  for (std::size_t k = 0; k < options_.agents_per_post; ++k) out.push_back(post * options_.agents_per_post + k);
  return out;
}

std::string Simulation::describe(std::size_t i) const {
  const SimPost& sp = posts_[i];
  const Post& post = catalogue_.posts()[sp.post];
  std::string agents;
  for (auto a : agents_of(i)) agents += (agents.empty() ? "" : ", ") + fleet_.agent_id(a);
  std::string line = agents + " " + post.id + " (" + post.city + ", " + post.country + "; " + post.region +
                     "): " + std::to_string(sp.signals.numeric_indicators().size()) + " indicators";
  auto raised = sp.signals.raised();
  line += raised.empty() ? ", calm" : ", standing concerns (amber): " + join_ids(catalogue_, raised);
  return line;
}

void Simulation::report_all(std::int64_t now_ms) {
  for (std::size_t i = 0; i < posts_.size(); ++i) {
    std::size_t first_agent = agents_of(i).front();
    update_measured(first_agent);
    for (auto ind : posts_[i].signals.numeric_indicators()) emit_value(first_agent, ind, now_ms);
  }
}

void Simulation::tick(double dt_s, std::int64_t now_ms) {
  if (options_.background_episodes) maybe_start_episode(now_ms);
  for (auto& sp : posts_) {
    sp.signals.advance(dt_s, now_ms);
    if (!sp.signals.note_pending() && std::bernoulli_distribution(kCalmNotesPerSecond * dt_s)(sp.signals.rng()))
      sp.signals.queue_note(calm_note(sp.signals.rng()));
  }
  for (std::size_t a = 0; a < agents_.size(); ++a) emit_tick(a, dt_s, now_ms);
}

void Simulation::escalate(const std::vector<std::size_t>& posts, const std::vector<std::uint32_t>& indicators,
                          Alert level, std::int64_t end_ms, const std::string& note) {
  for (auto p : posts) {
    for (auto ind : indicators) posts_[p].signals.start_episode(ind, level, end_ms);
    if (!note.empty()) posts_[p].signals.queue_note(note);
  }
}

void Simulation::file_note(std::size_t post, std::string text) { posts_[post].signals.queue_note(std::move(text)); }

void Simulation::maybe_start_episode(std::int64_t now_ms) {
  if (kinds_.empty()) return;
  // The first one comes a little sooner, so a viewer sees the board move early.
  if (next_episode_ms_ == 0) next_episode_ms_ = now_ms + uniform_ms(rng_, 10, 20);
  if (now_ms < next_episode_ms_) return;
  start_episode(now_ms);
  next_episode_ms_ = now_ms + uniform_ms(rng_, 20, 40);
}

void Simulation::start_episode(std::int64_t now_ms) {
  std::size_t i = pick_episode_post();
  const EpisodeKind& kind = kinds_[std::uniform_int_distribution<std::size_t>(0, kinds_.size() - 1)(rng_)];
  auto indicators = kind.indicators;
  std::shuffle(indicators.begin(), indicators.end(), rng_);
  auto k = std::uniform_int_distribution<std::size_t>(1, std::min<std::size_t>(3, indicators.size()))(rng_);
  indicators.resize(k);
  Alert level = std::bernoulli_distribution(0.5)(rng_) ? Alert::Red : Alert::Amber;
  std::int64_t duration_ms = uniform_ms(rng_, 20, 60);
  for (auto ind : indicators) posts_[i].signals.start_episode(ind, level, now_ms + duration_ms);
  posts_[i].signals.queue_note(kind.note);
  if (options_.announce_episodes)
    log_->info("episode at {}: {} → {} for {} s: {}", catalogue_.posts()[posts_[i].post].id, kind.name,
               level == Alert::Red ? "red" : "amber", duration_ms / 1000, join_ids(catalogue_, indicators));
}

std::size_t Simulation::pick_episode_post() {
  // Troubled places flare up more often: that is where the story is.
  std::vector<double> weights;
  for (const auto& sp : posts_) weights.push_back(sp.troubled ? 3.0 : 1.0);
  return std::discrete_distribution<std::size_t>(weights.begin(), weights.end())(rng_);
}

// The agent's spool depth comes from the real agent, not the model.
void Simulation::update_measured(std::size_t a) {
  if (spool_indicator_)
    posts_[agents_[a].post].signals.set_measured(*spool_indicator_, static_cast<double>(fleet_.backlog_events(a)));
}

void Simulation::emit_tick(std::size_t a, double dt_s, std::int64_t now_ms) {
  SimAgent& agent = agents_[a];
  PostSignals& signals = posts_[agent.post].signals;
  agent.budget += options_.rate * dt_s;
  auto n = static_cast<std::size_t>(agent.budget);
  agent.budget -= static_cast<double>(n);
  if (n == 0) return;
  if (auto note = signals.take_note()) {
    emit_note(a, std::move(*note), now_ms);
    --n;
  }
  update_measured(a);
  for (auto ind : signals.pick(n)) emit_value(a, ind, now_ms);
}

void Simulation::emit_value(std::size_t a, std::uint32_t indicator, std::int64_t now_ms) {
  const Indicator& ind = catalogue_.indicators()[indicator];
  PostSignals& signals = posts_[agents_[a].post].signals;
  IndicatorEvent e;
  e.indicator = ind.id;
  e.kind = ind.kind;
  e.number = signals.value(indicator);
  e.observed_at_ms = now_ms;
  signals.mark_reported(indicator, e.number);
  submit(a, std::move(e));
}

void Simulation::emit_note(std::size_t a, std::string text, std::int64_t now_ms) {
  if (!note_indicator_) return;
  IndicatorEvent e;
  e.indicator = catalogue_.indicators()[*note_indicator_].id;
  e.kind = ValueKind::Text;
  e.text = std::move(text);
  e.observed_at_ms = now_ms;
  submit(a, std::move(e));
}

void Simulation::submit(std::size_t a, IndicatorEvent e) {
  e.tags = {{"source", "postwatch-sim"}};
  auto r = fleet_.submit(a, std::move(e));
  // A refused event is a simulator bug or a full backlog: say so, but not a thousand times.
  if (!r.accepted && ++submit_errors_ <= 10) log_->warn("{}: event refused: {}", fleet_.agent_id(a), r.error);
}

}  // namespace postwatch::sim
