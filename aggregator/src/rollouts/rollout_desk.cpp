#include "rollouts/rollout_desk.hpp"

#include "rollouts/durable_file.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>

namespace postwatch::aggregator {
namespace {

using json = nlohmann::json;

// FNV-1a of "post/agent": a stable order that spreads the canary over posts.
std::uint64_t spread(const RolloutCandidate& c) {
  std::uint64_t h = 1469598103934665603ull;
  for (char ch : c.post + "/" + c.agent) h = (h ^ static_cast<unsigned char>(ch)) * 1099511628211ull;
  return h;
}

// What a plan's state looks like, to tell whether a tick changed it (then it is saved).
std::string fingerprint(const RolloutPlan& p) {
  std::string s(to_string(p.phase()));
  s += std::to_string(p.current_wave());
  for (const auto& a : p.agents()) s += static_cast<char>('0' + static_cast<int>(a.state));
  return s;
}

}  // namespace

RolloutDesk::RolloutDesk(std::vector<PublicKey> keys, std::filesystem::path file, std::shared_ptr<spdlog::logger> log)
    : keys_(std::move(keys)), file_(std::move(file)), log_(std::move(log)) {
  std::ifstream in(file_);
  if (!in) return;
  auto j = json::parse(in, nullptr, false);
  if (!j.is_array()) {
    log_->error("{}: not a list of rollouts; starting without them (the file is left as it is)", file_.string());
    return;
  }
  for (const auto& r : j) {
    std::string error;
    if (auto plan = RolloutPlan::from_json(r, keys_, error))
      plans_.emplace(plan->id(), std::move(*plan));
    else
      log_->error("{}: rollout {} dropped: {}", file_.string(), r.value("id", 0), error);
  }
  if (!plans_.empty())
    log_->info("{} rollout(s) read from {}, {} running", plans_.size(), file_.string(),
               count(RolloutPlan::Phase::Running));
}

const RolloutPlan& RolloutDesk::create(const std::string& signed_text, const RolloutPolicy& policy,
                                       const std::string& by, const std::vector<RolloutCandidate>& agents,
                                       std::int64_t now_ms) {
  if (!enabled()) throw RolloutError(503, "no fleet keys: start the aggregator with --fleet-keys FILE (docs/fleet.md)");
  if (auto why = policy.check(); !why.empty()) throw RolloutError(400, why);
  auto opened = open_bundle(signed_text, keys_);
  if (!opened.ok())
    throw RolloutError(400, "bundle refused (" + std::string(to_string(opened.refusal)) + "): " + opened.error);
  for (const auto& [id, p] : plans_)
    if (p.bundle().version >= opened.bundle.version)
      throw RolloutError(409, "bundle v" + std::to_string(opened.bundle.version) + " is not newer than v" +
                                  std::to_string(p.bundle().version) + " of rollout " + std::to_string(id) +
                                  ": agents would refuse it as a replay; sign it with a higher --version");
  if (gate_ && !opened.bundle.catalogue.empty()) gate_(opened.bundle);
  std::vector<RolloutCandidate> chosen;
  for (const auto& c : agents)
    if (c.report && opened.bundle.target.addresses(c.region, c.post, c.agent)) chosen.push_back(c);
  std::sort(chosen.begin(), chosen.end(),
            [](const RolloutCandidate& a, const RolloutCandidate& b) { return spread(a) < spread(b); });
  std::vector<RolloutAgent> plan_agents;
  for (const auto& c : chosen) {
    RolloutAgent a;
    a.post = c.post;
    a.agent = c.agent;
    a.region = c.region;
    plan_agents.push_back(std::move(a));
  }
  const std::uint64_t id = plans_.empty() ? 1 : plans_.rbegin()->first + 1;
  auto [it, _] =
      plans_.emplace(id, RolloutPlan(id, opened.bundle, signed_text, policy, std::move(plan_agents), by, now_ms));
  log_->info(
      "rollout {} of fleet bundle v{} to {} ({} agent(s) taking bundles) started by {}: canary {} %, waves "
      "of {} %, stops above {} % failed",
      id, opened.bundle.version, opened.bundle.target.describe(), it->second.agents().size(), by, policy.canary_percent,
      policy.wave_percent, policy.max_failed_percent);
  save();
  return it->second;
}

void RolloutDesk::tick(const ReportOf& report_of, const Publish& publish, std::int64_t now_ms) {
  bool changed = false;
  for (auto& [id, plan] : plans_) {
    if (plan.phase() != RolloutPlan::Phase::Running && plan.phase() != RolloutPlan::Phase::Paused) continue;
    if (plan.phase() == RolloutPlan::Phase::Running && waits_for_catalogue(plan)) continue;
    const auto before = fingerprint(plan);
    for (std::size_t i : plan.step(report_of, now_ms)) {
      const auto& a = plan.agents()[i];
      publish(bundle_topic(BundleTarget{BundleTarget::Scope::Agent, "", a.post, a.agent}), plan.signed_text());
    }
    if (plan.phase() == RolloutPlan::Phase::Complete) {
      // Agents that come later (or were offline) take it from their target's topic.
      publish(bundle_topic(plan.bundle().target), plan.signed_text());
      log_->info("rollout {} of v{} complete: {} applied, {} failed", id, plan.bundle().version,
                 plan.count(RolloutAgent::State::Applied), plan.count(RolloutAgent::State::Failed));
    } else if (plan.phase() == RolloutPlan::Phase::Aborted) {
      // Its retained copies go, so an agent that was offline does not take it on reconnect.
      for (const auto& a : plan.agents())
        if (a.state != RolloutAgent::State::Waiting)
          publish(bundle_topic(BundleTarget{BundleTarget::Scope::Agent, "", a.post, a.agent}), "");
      log_->error("rollout {} of v{} stopped by itself: {}", id, plan.bundle().version, plan.stop_reason());
    }
    changed = changed || fingerprint(plan) != before;
  }
  if (changed) save();
}

void RolloutDesk::set_catalogue_gate(CatalogueGate gate, std::uint32_t in_use) {
  gate_ = std::move(gate);
  catalogue_in_use_ = in_use;
  for (const auto& [id, p] : plans_)
    if (p.phase() == RolloutPlan::Phase::Running && waits_for_catalogue(p))
      log_->warn(
          "rollout {} waits for this aggregator to run catalogue_version {} (it runs {}): the adopted "
          "catalogue did not load, or the installed one replaced it; abort the rollout or install the catalogue",
          id, catalogue_version(p), in_use);
}

std::uint32_t RolloutDesk::catalogue_version(const RolloutPlan& plan) const {
  if (plan.bundle().catalogue.empty()) return 0;
  auto it = catalogue_of_.find(plan.id());
  if (it == catalogue_of_.end()) {
    // Signed and checked when the rollout was made: only the version is read here.
    auto j = json::parse(plan.bundle().catalogue, nullptr, false);
    std::uint32_t v = 0;
    if (j.is_object() && j.contains("catalogue_version") && j["catalogue_version"].is_number_unsigned())
      v = j["catalogue_version"].get<std::uint32_t>();
    it = catalogue_of_.emplace(plan.id(), v).first;
  }
  return it->second;
}

bool RolloutDesk::waits_for_catalogue(const RolloutPlan& plan) const {
  return gate_ && catalogue_version(plan) > catalogue_in_use_;
}

RolloutPlan& RolloutDesk::get(std::uint64_t id) {
  auto it = plans_.find(id);
  if (it == plans_.end()) throw RolloutError(404, "no rollout " + std::to_string(id));
  return it->second;
}

const RolloutPlan* RolloutDesk::find(std::uint64_t id) const {
  auto it = plans_.find(id);
  return it == plans_.end() ? nullptr : &it->second;
}

const RolloutPlan& RolloutDesk::pause(std::uint64_t id, std::int64_t now_ms) {
  auto& p = get(id);
  if (p.phase() != RolloutPlan::Phase::Running)
    throw RolloutError(409, "rollout " + std::to_string(id) + " is " + std::string(to_string(p.phase())));
  p.pause(now_ms);
  save();
  return p;
}

const RolloutPlan& RolloutDesk::resume(std::uint64_t id, std::int64_t now_ms) {
  auto& p = get(id);
  if (p.phase() != RolloutPlan::Phase::Paused)
    throw RolloutError(409, "rollout " + std::to_string(id) + " is " + std::string(to_string(p.phase())));
  p.resume(now_ms);
  save();
  return p;
}

const RolloutPlan& RolloutDesk::abort(std::uint64_t id, const std::string& by, std::int64_t now_ms) {
  auto& p = get(id);
  if (p.phase() == RolloutPlan::Phase::Complete || p.phase() == RolloutPlan::Phase::Aborted)
    throw RolloutError(409, "rollout " + std::to_string(id) + " has ended (" + std::string(to_string(p.phase())) + ")");
  p.abort("aborted by " + by, now_ms);
  log_->warn("rollout {} of v{} aborted by {}", id, p.bundle().version, by);
  save();
  return p;
}

std::size_t RolloutDesk::count(RolloutPlan::Phase phase) const {
  return static_cast<std::size_t>(
      std::count_if(plans_.begin(), plans_.end(), [phase](const auto& kv) { return kv.second.phase() == phase; }));
}

std::size_t RolloutDesk::agents(RolloutAgent::State state) const {
  std::size_t n = 0;
  for (const auto& [_, p] : plans_) n += p.count(state);
  return n;
}

void RolloutDesk::save() const {
  json all = json::array();
  for (const auto& [_, p] : plans_) all.push_back(p.to_json());
  const std::string text = all.dump(1) + "\n";
  try {
    replace_file_durably(file_, text);
  } catch (const std::runtime_error& e) {
    log_->error("cannot write the rollouts: {}; they go on in memory", e.what());
  }
}

}  // namespace postwatch::aggregator
