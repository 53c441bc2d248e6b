// Plays a scenario's timeline against the running world: starts and ends each step
// on time, logs both, and undoes whatever is still in force when the run stops
// (restores cut uplinks, restarts the broker) so the fleet can drain.
#pragma once

#include "broker_control.hpp"
#include "scenario.hpp"
#include "simulation.hpp"
#include "uplink_relay.hpp"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace spdlog {
class logger;
}

namespace postwatch::sim {

class ScenarioRunner {
 public:
  // `relay`: the agents' uplinks, or null when needs_relay() says the scenario uses none.
  // `broker`: the stop/start commands, or null: an outage then cuts every uplink instead.
  // Both must outlive the runner.
  ScenarioRunner(const Scenario& scenario, const IndicatorCatalogue& catalogue, Simulation& world, UplinkRelay* relay,
                 BrokerControl* broker, std::shared_ptr<spdlog::logger> log);

  // Ends the steps whose time is up and starts those due, `elapsed_s` after the timeline began.
  void advance(double elapsed_s, std::int64_t now_ms);
  // Ends every step still in force, and waits for a broker start command to finish.
  void finish();

  // Silence cuts a post's uplinks; a broker outage cuts them all, or with broker
  // commands holds back reconnections while the broker is down.
  static bool needs_relay(const Scenario& scenario);

 private:
  struct Step {
    const ScenarioStep* step = nullptr;
    std::vector<std::size_t> posts;  // the world's post numbers it applies to
    std::string where;               // "bamako, niamey" for messages
  };
  struct Running {
    std::size_t step = 0;  // in steps_
    double end_s = 0;      // elapsed time at which it ends
  };

  Step resolve(const ScenarioStep& step) const;
  void begin(const Step& s, std::int64_t now_ms);
  void end(const Step& s);
  void cut(const Step& s, bool restore);
  void for_each_agent(const std::function<void(std::size_t)>& f) const;
  std::string label(const Step& s) const;

  const Scenario& scenario_;
  const IndicatorCatalogue& catalogue_;
  Simulation& world_;
  UplinkRelay* relay_;
  BrokerControl* broker_;
  std::shared_ptr<spdlog::logger> log_;
  std::vector<Step> steps_;
  std::vector<Running> running_;
  std::size_t next_ = 0;      // the next step to start
  double cycle_start_s_ = 0;  // when the current pass of the timeline began
  std::size_t cycle_ = 1;
};

}  // namespace postwatch::sim
