// Fleet bundles, rollouts and remote commands (docs/fleet.md): their rows of the figure table
// (feed/figures.hpp), for /metrics only.
#include "feed/figures.hpp"
#include "rollouts/command_desk.hpp"
#include "rollouts/rollout_desk.hpp"

namespace postwatch::aggregator {

void add_fleet_figures(FigureRegistry& r, const AgentTable& agents, const CommandDesk* commands,
                       const RolloutDesk* rollouts) {
  using L = MetricsText;
  using O = FleetReport::Outcome;
  using Emit = FigureRegistry::Emit;
  r.family("postwatch_fleet_agents", MetricKind::Gauge,
           "Agents that take fleet bundles, by what became of the last bundle they tried (their births and "
           "heartbeats).")
      .samples([&agents](const Emit& emit) {
        std::uint64_t by_outcome[5] = {};
        for (const auto& a : agents)
          if (a.has_presence && a.presence.has_fleet) ++by_outcome[static_cast<int>(a.presence.fleet.last_outcome)];
        for (auto o : {O::None, O::Applied, O::Refused, O::RolledBack, O::OnTrial})
          emit(L::label("last_outcome", to_string(o)), by_outcome[static_cast<int>(o)]);
      });
  // The agents' own counts, summed over those online now: a gauge, since an agent that leaves
  // takes its counts with it.
  r.family("postwatch_fleet_bundle_outcomes", MetricKind::Gauge,
           "Fleet bundles the agents online applied, rolled back by themselves, or refused, by their own counts.")
      .samples([&agents](const Emit& emit) {
        std::uint64_t applied = 0, rolled_back = 0, refused = 0;
        for (const auto& a : agents)
          if (a.has_presence && a.presence.has_fleet && a.presence.online) {
            applied += a.presence.fleet.applied;
            rolled_back += a.presence.fleet.rolled_back;
            refused += a.presence.fleet.refused;
          }
        emit(L::label("outcome", "applied"), applied);
        emit(L::label("outcome", "rolled_back"), rolled_back);
        emit(L::label("outcome", "refused"), refused);
      });
  if (commands)
    r.family("postwatch_commands", MetricKind::Gauge,
             "Remote commands held, by state (docs/fleet.md, \"Remote commands\").")
        .samples([commands](const Emit& emit) {
          for (auto st : {SentCommand::State::Pending, SentCommand::State::Done, SentCommand::State::Failed,
                          SentCommand::State::Expired})
            emit(L::label("state", to_string(st)), std::uint64_t{commands->count(st)});
        });
  if (!rollouts) return;
  r.family("postwatch_rollouts", MetricKind::Gauge, "Fleet rollouts held, by phase.")
      .samples([rollouts](const Emit& emit) {
        for (auto p : {RolloutPlan::Phase::Running, RolloutPlan::Phase::Paused, RolloutPlan::Phase::Complete,
                       RolloutPlan::Phase::Aborted})
          emit(L::label("phase", to_string(p)), std::uint64_t{rollouts->count(p)});
      });
  r.family("postwatch_rollout_agents", MetricKind::Gauge,
           "Agents of the rollouts held, by state: waiting for their wave, sent, applied, failed (rolled back, "
           "refused or silent).")
      .samples([rollouts](const Emit& emit) {
        for (auto s : {RolloutAgent::State::Waiting, RolloutAgent::State::Sent, RolloutAgent::State::Applied,
                       RolloutAgent::State::Failed})
          emit(L::label("state", to_string(s)), std::uint64_t{rollouts->agents(s)});
      });
}

}  // namespace postwatch::aggregator
