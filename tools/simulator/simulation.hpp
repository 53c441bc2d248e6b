// The simulated world, tick by tick: advances every post's signals, starts a random
// escalation episode somewhere every 20-40 s (unless the scenario turns that off),
// takes escalations and notes from the scenario's timeline, and hands each post's
// events to its agents at the configured rate.
#pragma once

#include "fleet.hpp"
#include "signal_model.hpp"
#include "story.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace spdlog {
class logger;
}

namespace postwatch::sim {

struct SimulationOptions {
  double rate = 2;  // events per second per agent
  std::uint64_t seed = 1;
  std::size_t agents_per_post = 1;
  bool background_episodes = true;
  bool standing_concerns = true;
  bool announce_episodes = true;
};

class Simulation {
 public:
  // `posts` are catalogue positions. The fleet's agents are grouped by post in that
  // order, `agents_per_post` each: agent a reports for post a / agents_per_post.
  // Several agents at one post report the same world, each at the full rate.
  Simulation(const IndicatorCatalogue& catalogue, const std::vector<std::uint32_t>& posts,
             const SimulationOptions& options, Fleet& fleet, std::shared_ptr<spdlog::logger> log);

  // Every post reports each of its indicators once, as a post does when its agent
  // comes up, so the board is complete from the start.
  void report_all(std::int64_t now_ms);
  void tick(double dt_s, std::int64_t now_ms);

  // A scenario's escalation: drives `indicators` at the posts towards `level` until
  // `end_ms`, then lets them decay back; each post files `note` when not empty.
  void escalate(const std::vector<std::size_t>& posts, const std::vector<std::uint32_t>& indicators, Alert level,
                std::int64_t end_ms, const std::string& note);
  void file_note(std::size_t post, std::string text);

  // Posts are numbered 0..post_count()-1 in fleet order.
  std::size_t post_count() const { return posts_.size(); }
  std::uint32_t catalogue_post(std::size_t post) const { return posts_[post].post; }
  std::vector<std::size_t> agents_of(std::size_t post) const;
  std::string describe(std::size_t post) const;  // one line about a simulated post
  std::uint64_t submit_errors() const { return submit_errors_; }

 private:
  struct SimPost {
    std::uint32_t post = 0;
    PostSignals signals;
    bool troubled = false;
  };
  struct SimAgent {
    std::size_t post = 0;
    double budget = 0;  // events owed under the rate limit, carried between ticks
  };

  void maybe_start_episode(std::int64_t now_ms);
  void start_episode(std::int64_t now_ms);
  std::size_t pick_episode_post();
  void update_measured(std::size_t agent);
  void emit_tick(std::size_t agent, double dt_s, std::int64_t now_ms);
  void emit_value(std::size_t agent, std::uint32_t indicator, std::int64_t now_ms);
  void emit_note(std::size_t agent, std::string text, std::int64_t now_ms);
  void submit(std::size_t agent, IndicatorEvent e);

  const IndicatorCatalogue& catalogue_;
  Fleet& fleet_;
  SimulationOptions options_;
  std::shared_ptr<spdlog::logger> log_;
  std::vector<SimPost> posts_;
  std::vector<SimAgent> agents_;
  std::vector<EpisodeKind> kinds_;
  std::mt19937_64 rng_;
  std::int64_t next_episode_ms_ = 0;  // 0: not scheduled yet
  std::optional<std::uint32_t> spool_indicator_, note_indicator_;
  std::uint64_t submit_errors_ = 0;
};

}  // namespace postwatch::sim
