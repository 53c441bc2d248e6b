// One staged rollout of a fleet bundle (docs/fleet.md, "Rollouts"): a canary share of the
// agents the bundle addresses first, then waves, each only once the one before settled, at the
// operator's rate; it stops by itself when too many of the agents it reached failed. Pure: the
// agents' own reports (FleetReport in births and heartbeats) and the clock drive it, and it
// says whom to send the bundle to next; RolloutDesk publishes and keeps it.
#pragma once

#include "postwatch/event.hpp"
#include "postwatch/fleet_bundle.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace postwatch::aggregator {

struct RolloutPolicy {
  std::uint32_t canary_percent = 10;      // of the agents addressed, at least one
  std::uint32_t wave_percent = 25;        // of the agents addressed per wave after the canary
  std::int64_t wave_interval_ms = 60000;  // at least this long between two waves' starts
  std::uint32_t max_failed_percent = 20;  // of the agents reached: more stops the rollout
  // Returns the first problem ("canary_percent must be 1 to 100"), empty when fine.
  std::string check() const;
};

struct RolloutAgent {
  enum class State { Waiting, Sent, Applied, Failed };
  std::string post, agent, region;
  State state = State::Waiting;
  std::uint32_t wave = 0;  // 0: the canary
  std::int64_t sent_at_ms = 0;
  std::string reason;  // Failed: what the agent reported, or that it never answered
};
std::string_view to_string(RolloutAgent::State s);

class RolloutPlan {
 public:
  enum class Phase { Running, Paused, Complete, Aborted };

  // `agents`: every agent the bundle addresses that takes bundles, in the order waves take them.
  RolloutPlan(std::uint64_t id, FleetBundle bundle, std::string signed_text, RolloutPolicy policy,
              std::vector<RolloutAgent> agents, std::string created_by, std::int64_t now_ms);

  // The agents' reports now (null: none, or an agent that does not take bundles).
  using ReportOf = std::function<const FleetReport*(const RolloutAgent&)>;
  // Judges the agents sent to from their reports, then starts the next wave when it is due.
  // Returns the agents (indexes into agents()) to send the bundle to now.
  std::vector<std::size_t> step(const ReportOf& report_of, std::int64_t now_ms);

  void pause(std::int64_t now_ms);
  void resume(std::int64_t now_ms);
  void abort(const std::string& why, std::int64_t now_ms);

  std::uint64_t id() const { return id_; }
  const FleetBundle& bundle() const { return bundle_; }
  const std::string& signed_text() const { return signed_text_; }
  Phase phase() const { return phase_; }
  const std::vector<RolloutAgent>& agents() const { return agents_; }
  std::uint32_t waves() const;  // the canary counts as one
  std::uint32_t current_wave() const { return wave_; }
  std::size_t count(RolloutAgent::State s) const;
  const std::string& stop_reason() const { return stop_reason_; }
  // An agent that was sent the bundle and is silent this long after its health deadline is
  // counted as failed: it may be offline (it gets the bundle when it comes back), but the
  // rollout does not wait for it.
  std::int64_t answer_grace_ms = 60000;

  nlohmann::json to_json() const;
  nlohmann::json carries() const;  // ["config"], ["catalogue"] or both
  static std::optional<RolloutPlan> from_json(const nlohmann::json& j, const std::vector<PublicKey>& keys,
                                              std::string& error);

 private:
  void judge(const ReportOf& report_of, std::int64_t now_ms);
  std::size_t wave_size(std::uint32_t wave) const;

  std::uint64_t id_;
  FleetBundle bundle_;
  std::string signed_text_;
  RolloutPolicy policy_;
  std::vector<RolloutAgent> agents_;
  std::string created_by_;
  std::int64_t created_at_ms_ = 0, wave_started_ms_ = 0, ended_at_ms_ = 0;
  Phase phase_ = Phase::Running;
  std::uint32_t wave_ = 0;
  bool wave_sent_ = false;
  std::string stop_reason_;
};
std::string_view to_string(RolloutPlan::Phase p);

}  // namespace postwatch::aggregator
