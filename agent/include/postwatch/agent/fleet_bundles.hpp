// The agent's side of fleet bundles (docs/fleet.md, "On the agent"). Bundles arrive on the
// fleet topics (Paho's thread queues them); the main loop asks poll() what to do. A bundle is
// opened (signature, key, target, version) and validated as --check-config would, before
// anything changes; then it goes in force on trial, and poll() judges the trial from the new
// agent's own stats: healthy by the bundle's deadline, or back to what ran before.
#pragma once

#include "postwatch/agent/agent.hpp"
#include "postwatch/agent/agent_config.hpp"
#include "postwatch/agent/bundle_store.hpp"
#include "postwatch/catalogue.hpp"
#include "postwatch/event.hpp"
#include "postwatch/fleet_bundle.hpp"
#include "postwatch/signing.hpp"

#include <chrono>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace spdlog {
class logger;
}

namespace postwatch::agent {

// A config with its catalogue, as the agent runs them.
struct LoadedConfig {
  AgentConfig config;
  std::shared_ptr<const IndicatorCatalogue> catalogue;
};

// What poll() found about a trial: why it is not healthy yet, or nothing.
std::string trial_health_problem(const AgentStats& stats, const std::vector<std::string>& input_problems);

class FleetBundles {
 public:
  // `config_file` is the board's own config and `local` that file as read without bundles;
  // fleet.key_file must be set. Throws std::runtime_error when the keys or the state cannot
  // be read.
  FleetBundles(std::filesystem::path config_file, std::filesystem::path default_catalogue, const AgentConfig& local,
               std::shared_ptr<spdlog::logger> log);

  // At start: rolls back a trial that a crash or restart cut short, then returns what to run.
  // A bundle in force that no longer opens or validates (its file altered) is logged, and the
  // board's own files run.
  LoadedConfig start(const LoadedConfig& local);

  // The topics to subscribe to for an agent of `region`.
  std::vector<std::string> topics(const std::string& region) const;

  // Paho's thread: a message on a fleet topic.
  void offer(std::string payload);

  // The main loop, often. `stats` and `input_problems` are the running agent's. Returns the
  // config to switch to when a bundle goes on trial or a trial is rolled back.
  std::optional<LoadedConfig> poll(const AgentStats& stats, const std::vector<std::string>& input_problems);

  // The trial failed before it could be judged (the new config did not even start): rolls
  // back at once; what to run instead.
  std::optional<LoadedConfig> give_up_trial(const std::string& reason);

  FleetReport report() const;
  const BundleStore& store() const { return store_; }
  bool on_trial() const { return trial_deadline_.has_value(); }

  // The shortest a trial lasts before it can be judged healthy: inputs get a first run.
  std::chrono::milliseconds min_trial{2000};
  // The clock trials are timed by (tests move it).
  std::function<std::chrono::steady_clock::time_point()> clock = [] { return std::chrono::steady_clock::now(); };

 private:
  std::optional<LoadedConfig> consider(const std::string& payload);
  // The config and catalogue made of the board's files and the bundles `v` names; the problems
  // as --check-config prints them when it does not validate.
  std::optional<LoadedConfig> load(const BundleVersions& v, std::string& problems) const;
  std::optional<LoadedConfig> load(const BundleVersions& v, const FleetBundle* incoming, std::string& problems) const;
  void note_refusal(const std::string& line);

  std::filesystem::path config_file_, default_catalogue_;
  AgentConfig local_;
  std::shared_ptr<spdlog::logger> log_;
  std::vector<PublicKey> keys_;
  BundleStore store_;
  std::string region_, post_, agent_;

  std::mutex mu_;  // guards inbox_
  std::deque<std::string> inbox_;

  std::optional<std::chrono::steady_clock::time_point> trial_deadline_;
  std::chrono::steady_clock::time_point trial_started_;
  std::uint32_t catalogue_version_ = 0;
  std::uint32_t applied_ = 0, rolled_back_ = 0, refused_ = 0;
  std::set<std::string> refusals_logged_;  // a retained copy comes back on every reconnect
};

}  // namespace postwatch::agent
