// The rollouts the operations centre started (docs/fleet.md, "Rollouts"): made from a bundle
// signed offline with the fleet key and handed to the API, stepped on the service's tick, the
// bundle published retained on each agent's own bundle topic wave by wave and, once the last
// wave settled, on its target's topic for agents that come later. Kept in one JSON file,
// written whole and renamed, so a restarted aggregator goes on where it stopped.
#pragma once

#include "rollouts/rollout_plan.hpp"

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace spdlog {
class logger;
}

namespace postwatch::aggregator {

// A request the desk refuses, with the HTTP status that says why.
struct RolloutError : std::runtime_error {
  RolloutError(int status, const std::string& what) : std::runtime_error(what), status(status) {}
  int status;
};

// An agent as the desk sees it: where it is and what it last reported of its bundles.
struct RolloutCandidate {
  std::string region, post, agent;
  const FleetReport* report = nullptr;  // null: it takes no bundles (or never said so)
};

class RolloutDesk {
 public:
  // `keys`: the fleet's public keys (--fleet-keys); none: rollouts are refused (503).
  RolloutDesk(std::vector<PublicKey> keys, std::filesystem::path file, std::shared_ptr<spdlog::logger> log);

  bool enabled() const { return !keys_.empty(); }

  // A rollout carrying a catalogue goes to agents only once the aggregator runs that catalogue
  // (docs/fleet.md, "A new indicator"): `gate` checks a new bundle's catalogue and has the
  // aggregator adopt it (throwing RolloutError to refuse it); `in_use` is the catalogue_version
  // this aggregator runs. Without a gate, catalogues are not waited for.
  using CatalogueGate = std::function<void(const FleetBundle&)>;
  void set_catalogue_gate(CatalogueGate gate, std::uint32_t in_use);
  // The catalogue_version a rollout's bundle carries (0: none, or no catalogue), and whether the
  // rollout waits for the aggregator to run it.
  std::uint32_t catalogue_version(const RolloutPlan& plan) const;
  bool waits_for_catalogue(const RolloutPlan& plan) const;

  // A new rollout of `signed_text` to the agents among `agents` the bundle addresses and that
  // take bundles. Throws RolloutError: 503 without fleet keys, 400 for a refused bundle or a bad
  // policy, 409 for a version at or below one already rolled out.
  const RolloutPlan& create(const std::string& signed_text, const RolloutPolicy& policy, const std::string& by,
                            const std::vector<RolloutCandidate>& agents, std::int64_t now_ms);

  using Publish = std::function<void(const std::string& topic, const std::string& payload)>;  // retained
  using ReportOf = RolloutPlan::ReportOf;
  // Steps every running rollout; publishes what is due.
  void tick(const ReportOf& report_of, const Publish& publish, std::int64_t now_ms);

  // Operator actions; throw RolloutError(404) for an unknown id, 409 when it has ended.
  const RolloutPlan& pause(std::uint64_t id, std::int64_t now_ms);
  const RolloutPlan& resume(std::uint64_t id, std::int64_t now_ms);
  const RolloutPlan& abort(std::uint64_t id, const std::string& by, std::int64_t now_ms);

  const RolloutPlan* find(std::uint64_t id) const;
  const std::map<std::uint64_t, RolloutPlan>& rollouts() const { return plans_; }
  std::size_t count(RolloutPlan::Phase phase) const;
  std::size_t agents(RolloutAgent::State state) const;  // over every rollout held

 private:
  RolloutPlan& get(std::uint64_t id);
  void save() const;

  std::vector<PublicKey> keys_;
  std::filesystem::path file_;
  std::shared_ptr<spdlog::logger> log_;
  std::map<std::uint64_t, RolloutPlan> plans_;
  CatalogueGate gate_;
  std::uint32_t catalogue_in_use_ = 0;
  mutable std::map<std::uint64_t, std::uint32_t> catalogue_of_;  // parsed once per rollout
};

}  // namespace postwatch::aggregator
