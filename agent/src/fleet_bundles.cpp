#include "postwatch/agent/fleet_bundles.hpp"

#include "postwatch/clock.hpp"
#include "postwatch/fleet_bundle.hpp"

#include <spdlog/spdlog.h>

namespace postwatch::agent {
namespace {

FleetReport::Outcome outcome_of(BundleOutcome::Kind kind, bool on_trial) {
  if (on_trial) return FleetReport::Outcome::OnTrial;
  switch (kind) {
    case BundleOutcome::Kind::Applied: return FleetReport::Outcome::Applied;
    case BundleOutcome::Kind::Refused: return FleetReport::Outcome::Refused;
    case BundleOutcome::Kind::RolledBack: return FleetReport::Outcome::RolledBack;
    case BundleOutcome::Kind::None: break;
  }
  return FleetReport::Outcome::None;
}

}  // namespace

std::string trial_health_problem(const AgentStats& stats, const std::vector<std::string>& input_problems) {
  if (!stats.connected)
    return "not connected to the broker" + (stats.last_error.empty() ? std::string() : " (" + stats.last_error + ")");
  if (stats.births_sent == 0) return "connected, but its birth message was not sent";
  if (stats.backlog.events > 0 && stats.sent == 0) return "connected, but no event was sent";
  if (!input_problems.empty()) return input_problems.front();
  return {};
}

FleetBundles::FleetBundles(std::filesystem::path config_file, std::filesystem::path default_catalogue,
                           const AgentConfig& local, std::shared_ptr<spdlog::logger> log)
    : config_file_(std::move(config_file)),
      default_catalogue_(std::move(default_catalogue)),
      local_(local),
      log_(std::move(log)),
      keys_(load_fleet_keys(local.fleet.key_file.string())),
      store_(local.fleet.state_dir),
      post_(local.post_id),
      agent_(local.agent_id) {}

std::vector<std::string> FleetBundles::topics(const std::string& region) const {
  return bundle_topics_for(region, post_, agent_);
}

LoadedConfig FleetBundles::start(const LoadedConfig& local) {
  if (const auto* post = local.catalogue->find_post(post_)) region_ = post->region;
  if (store_.recover(now_utc_ms()))
    log_->error("fleet bundle v{} rolled back: {}", store_.state().last.version, store_.state().last.reason);
  catalogue_version_ = local.catalogue->version();
  const auto& current = store_.state().current;
  if (current == BundleVersions{}) return local;
  std::string problems;
  if (auto loaded = load(current, problems)) {
    catalogue_version_ = loaded->catalogue->version();
    log_->info("running fleet bundles: config from v{}, catalogue from v{}", current.config, current.catalogue);
    return *loaded;
  }
  log_->error(
      "the fleet bundles in force (config v{}, catalogue v{}) no longer load; running the board's own files: {}",
      current.config, current.catalogue, problems);
  return local;
}

void FleetBundles::offer(std::string payload) {
  if (payload.empty()) return;  // a retained bundle cleared (an aborted rollout): nothing to take
  std::lock_guard lk(mu_);
  if (inbox_.size() >= 16) inbox_.pop_front();  // a flood: the newest ones matter
  inbox_.push_back(std::move(payload));
}

std::optional<LoadedConfig> FleetBundles::load(const BundleVersions& v, std::string& problems) const {
  return load(v, nullptr, problems);
}

std::optional<LoadedConfig> FleetBundles::load(const BundleVersions& v, const FleetBundle* incoming,
                                               std::string& problems) const {
  // The bundle that carries part `version`: the incoming one, or a held one opened again (a
  // file altered on the board does not open).
  auto part = [&](std::uint64_t version, bool config, std::string& text, std::string& origin) {
    if (version == 0) return true;
    origin = "fleet bundle v" + std::to_string(version);
    if (incoming && incoming->version == version) {
      text = config ? incoming->config : incoming->catalogue;
      return true;
    }
    auto opened = open_bundle(store_.bundle_text(version), keys_);
    if (!opened.ok()) {
      problems = origin + " as held in " + local_.fleet.state_dir.string() + ": " + opened.error;
      return false;
    }
    text = config ? opened.bundle.config : opened.bundle.catalogue;
    return true;
  };
  ConfigOverride over;
  std::string config_origin;
  if (!part(v.config, true, over.overlay, config_origin) ||
      !part(v.catalogue, false, over.catalogue, over.catalogue_origin))
    return std::nullopt;
  ConfigCheck check = AgentConfig::validate(config_file_, default_catalogue_, over);
  if (!check.ok()) {
    problems = check.describe_all();
    return std::nullopt;
  }
  return LoadedConfig{std::move(*check.config), check.catalogue};
}

void FleetBundles::note_refusal(const std::string& line) {
  ++refused_;
  if (refusals_logged_.size() < 64 && refusals_logged_.insert(line).second) log_->warn("{}", line);
}

std::optional<LoadedConfig> FleetBundles::consider(const std::string& payload) {
  auto opened = open_bundle(payload, keys_);
  if (!opened.ok()) {
    note_refusal("refused a fleet bundle (" + std::string(to_string(opened.refusal)) + "): " + opened.error);
    return std::nullopt;
  }
  const FleetBundle& b = opened.bundle;
  const auto& state = store_.state();
  if (!b.target.addresses(region_, post_, agent_)) {
    note_refusal("refused fleet bundle v" + std::to_string(b.version) + ": addressed to " + b.target.describe() +
                 ", not to this agent");
    return std::nullopt;
  }
  if (b.version <= state.newest_tried) {
    // The retained copy of what was tried already comes back on every reconnect, and during a
    // rollout the previous rollout's copy still sits on the target's topic: quiet.
    const auto& c = state.current;
    const auto& p = state.previous;
    if (b.version == state.newest_tried || b.version == c.config || b.version == c.catalogue || b.version == p.config ||
        b.version == p.catalogue)
      return std::nullopt;
    note_refusal("refused fleet bundle v" + std::to_string(b.version) + ": older than v" +
                 std::to_string(state.newest_tried) +
                 ", which this agent already tried (a replay, or a stale retained "
                 "copy)");
    return std::nullopt;
  }
  BundleVersions next = state.current;
  if (!b.config.empty()) next.config = b.version;
  if (!b.catalogue.empty()) next.catalogue = b.version;
  std::string problems;
  auto loaded = load(next, &b, problems);
  const auto now = now_utc_ms();
  if (!loaded) {
    ++refused_;
    // One line for the report: the first problem.
    store_.refuse(b.version, problems.substr(0, problems.find('\n')), now);
    log_->error("refused fleet bundle v{} for {}: it does not validate, nothing changed:\n{}", b.version,
                b.target.describe(), problems);
    return std::nullopt;
  }
  store_.keep(b.version, payload);
  const auto deadline = std::chrono::seconds(b.health_deadline_s);
  store_.begin_trial(b.version, next, now + std::chrono::duration_cast<std::chrono::milliseconds>(deadline).count(),
                     now);
  trial_started_ = clock();
  trial_deadline_ = trial_started_ + deadline;
  catalogue_version_ = loaded->catalogue->version();
  log_->info("fleet bundle v{} for {} ({}): switching to it; it must show health within {} s", b.version,
             b.target.describe(), b.note.empty() ? "no note" : b.note, b.health_deadline_s);
  return loaded;
}

std::optional<LoadedConfig> FleetBundles::poll(const AgentStats& stats,
                                               const std::vector<std::string>& input_problems) {
  if (trial_deadline_) {
    const auto now = clock();
    const auto problem = trial_health_problem(stats, input_problems);
    const auto version = store_.state().trial ? store_.state().trial->version : 0;
    if (problem.empty() && now - trial_started_ >= min_trial) {
      store_.commit_trial(now_utc_ms());
      trial_deadline_.reset();
      ++applied_;
      log_->info("fleet bundle v{} applied: healthy after {} ms", version,
                 std::chrono::duration_cast<std::chrono::milliseconds>(now - trial_started_).count());
      return std::nullopt;
    }
    if (now < *trial_deadline_) return std::nullopt;
    return give_up_trial("no health within the deadline: " + (problem.empty() ? "judged too late" : problem));
  }
  std::deque<std::string> inbox;
  {
    std::lock_guard lk(mu_);
    inbox.swap(inbox_);
  }
  while (!inbox.empty()) {
    auto payload = std::move(inbox.front());
    inbox.pop_front();
    if (auto next = consider(payload)) {
      // What came after waits for the trial's end.
      std::lock_guard lk(mu_);
      for (auto it = inbox.rbegin(); it != inbox.rend(); ++it) inbox_.push_front(std::move(*it));
      return next;
    }
  }
  return std::nullopt;
}

std::optional<LoadedConfig> FleetBundles::give_up_trial(const std::string& reason) {
  if (!trial_deadline_) return std::nullopt;
  const auto version = store_.state().trial ? store_.state().trial->version : 0;
  store_.roll_back(reason, now_utc_ms());
  trial_deadline_.reset();
  ++rolled_back_;
  log_->error("fleet bundle v{} rolled back: {}", version, reason);
  std::string problems;
  if (auto loaded = load(store_.state().current, problems)) {
    catalogue_version_ = loaded->catalogue->version();
    return loaded;
  }
  log_->error("what ran before fleet bundle v{} no longer loads; running the board's own files: {}", version, problems);
  if (auto own = load(BundleVersions{}, problems)) {
    catalogue_version_ = own->catalogue->version();
    return own;
  }
  return std::nullopt;
}

FleetReport FleetBundles::report() const {
  const auto& s = store_.state();
  FleetReport r;
  r.config_bundle = s.current.config;
  r.catalogue_bundle = s.current.catalogue;
  r.catalogue_version = catalogue_version_;
  r.last_outcome = outcome_of(s.last.kind, trial_deadline_.has_value());
  r.last_version = s.last.version;
  r.last_reason = s.last.reason;
  r.applied = applied_;
  r.rolled_back = rolled_back_;
  r.refused = refused_;
  return r;
}

}  // namespace postwatch::agent
