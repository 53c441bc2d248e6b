// The simulated world, tick by tick: advances every post's signals, starts an
// escalation episode somewhere every 20-40 s, and hands each post's events to its
// agent at the configured rate.
#pragma once

#include "fleet.hpp"
#include "scenario.hpp"
#include "signal_model.hpp"

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace spdlog {
class logger;
}

namespace postwatch::sim {

struct SimulationOptions {
  double rate = 2;  // events per second per post
  std::uint64_t seed = 1;
  bool announce_episodes = true;
};

class Simulation {
 public:
  // `posts` are catalogue positions, in the fleet's agent order.
  Simulation(const IndicatorCatalogue& catalogue, const std::vector<std::uint32_t>& posts,
             const SimulationOptions& options, Fleet& fleet, std::shared_ptr<spdlog::logger> log);

  // Every post reports each of its indicators once, as a post does when its agent
  // comes up, so the board is complete from the start.
  void report_all(std::int64_t now_ms);
  void tick(double dt_s, std::int64_t now_ms);

  std::string describe(std::size_t i) const;  // one line about a simulated post
  std::uint64_t submit_errors() const { return submit_errors_; }

 private:
  struct SimPost {
    std::uint32_t post = 0;
    PostSignals signals;
    double budget = 0;  // events owed under the rate limit, carried between ticks
    bool troubled = false;
  };

  void maybe_start_episode(std::int64_t now_ms);
  void start_episode(std::int64_t now_ms);
  std::size_t pick_episode_post();
  void update_measured(std::size_t i);
  void emit_tick(std::size_t i, double dt_s, std::int64_t now_ms);
  void emit_value(std::size_t i, std::uint32_t indicator, std::int64_t now_ms);
  void emit_note(std::size_t i, std::string text, std::int64_t now_ms);
  void submit(std::size_t i, IndicatorEvent e);

  const IndicatorCatalogue& catalogue_;
  Fleet& fleet_;
  SimulationOptions options_;
  std::shared_ptr<spdlog::logger> log_;
  std::vector<SimPost> posts_;
  std::vector<EpisodeKind> kinds_;
  std::mt19937_64 rng_;
  std::int64_t next_episode_ms_ = 0;  // 0: not scheduled yet
  std::optional<std::uint32_t> spool_indicator_, note_indicator_;
  std::uint64_t submit_errors_ = 0;
};

}  // namespace postwatch::sim
