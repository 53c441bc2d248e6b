#include "rollouts/rollout_plan.hpp"

#include <algorithm>

namespace postwatch::aggregator {
namespace {

using json = nlohmann::json;

std::size_t percent_of(std::size_t n, std::uint32_t percent) {
  return std::max<std::size_t>(1, (n * percent + 99) / 100);
}

const char* kStates[] = {"waiting", "sent", "applied", "failed"};
const char* kPhases[] = {"running", "paused", "complete", "aborted"};

template <typename E, std::size_t N>
std::optional<E> parse_name(const std::string& s, const char* const (&names)[N]) {
  for (std::size_t i = 0; i < N; ++i)
    if (s == names[i]) return static_cast<E>(i);
  return std::nullopt;
}

}  // namespace

std::string_view to_string(RolloutAgent::State s) { return kStates[static_cast<int>(s)]; }
std::string_view to_string(RolloutPlan::Phase p) { return kPhases[static_cast<int>(p)]; }

std::string RolloutPolicy::check() const {
  if (canary_percent < 1 || canary_percent > 100) return "canary_percent must be 1 to 100";
  if (wave_percent < 1 || wave_percent > 100) return "wave_percent must be 1 to 100";
  if (max_failed_percent > 100) return "max_failed_percent must be 0 to 100";
  if (wave_interval_ms < 0 || wave_interval_ms > std::int64_t{7} * 86400 * 1000)
    return "wave_interval_s must be 0 to 604800";
  return {};
}

RolloutPlan::RolloutPlan(std::uint64_t id, FleetBundle bundle, std::string signed_text, RolloutPolicy policy,
                         std::vector<RolloutAgent> agents, std::string created_by, std::int64_t now_ms)
    : id_(id),
      bundle_(std::move(bundle)),
      signed_text_(std::move(signed_text)),
      policy_(policy),
      agents_(std::move(agents)),
      created_by_(std::move(created_by)),
      created_at_ms_(now_ms) {
  for (std::size_t i = 0; i < agents_.size(); ++i) {
    const std::size_t canary = percent_of(agents_.size(), policy_.canary_percent);
    agents_[i].wave =
        i < canary ? 0
                   : static_cast<std::uint32_t>(1 + (i - canary) / percent_of(agents_.size(), policy_.wave_percent));
  }
}

std::uint32_t RolloutPlan::waves() const { return agents_.empty() ? 0 : agents_.back().wave + 1; }

std::size_t RolloutPlan::count(RolloutAgent::State s) const {
  return static_cast<std::size_t>(
      std::count_if(agents_.begin(), agents_.end(), [s](const RolloutAgent& a) { return a.state == s; }));
}

void RolloutPlan::judge(const ReportOf& report_of, std::int64_t now_ms) {
  const std::uint64_t v = bundle_.version;
  for (auto& a : agents_) {
    if (a.state != RolloutAgent::State::Sent) continue;
    if (const FleetReport* r = report_of(a)) {
      using O = FleetReport::Outcome;
      const bool runs_it = (!bundle_.config.empty() && r->config_bundle >= v) ||
                           (!bundle_.catalogue.empty() && r->catalogue_bundle >= v);
      if (r->last_version == v && (r->last_outcome == O::RolledBack || r->last_outcome == O::Refused)) {
        a.state = RolloutAgent::State::Failed;
        a.reason = std::string(to_string(r->last_outcome)) + ": " + r->last_reason;
        continue;
      }
      if (runs_it && !(r->last_version == v && r->last_outcome == O::OnTrial)) {
        a.state = RolloutAgent::State::Applied;
        continue;
      }
    }
    if (now_ms - a.sent_at_ms > std::int64_t{bundle_.health_deadline_s} * 1000 + answer_grace_ms) {
      a.state = RolloutAgent::State::Failed;
      a.reason = "no report of v" + std::to_string(v) + " within its health deadline and " +
                 std::to_string(answer_grace_ms / 1000) + " s (offline? it gets the bundle when it reconnects)";
    }
  }
}

std::vector<std::size_t> RolloutPlan::step(const ReportOf& report_of, std::int64_t now_ms) {
  judge(report_of, now_ms);
  if (phase_ != Phase::Running) return {};
  const std::size_t failed = count(RolloutAgent::State::Failed);
  const std::size_t reached = failed + count(RolloutAgent::State::Applied);
  if (failed > 0 && failed * 100 > std::size_t{policy_.max_failed_percent} * reached) {
    abort(std::to_string(failed) + " of the " + std::to_string(reached) +
              " agents reached failed to apply it (more than " + std::to_string(policy_.max_failed_percent) + " %)",
          now_ms);
    return {};
  }
  auto in_wave = [&](const RolloutAgent& a) { return a.wave == wave_; };
  if (!wave_sent_) {
    std::vector<std::size_t> send;
    for (std::size_t i = 0; i < agents_.size(); ++i)
      if (in_wave(agents_[i])) {
        agents_[i].state = RolloutAgent::State::Sent;
        agents_[i].sent_at_ms = now_ms;
        send.push_back(i);
      }
    wave_sent_ = true;
    wave_started_ms_ = now_ms;
    if (!send.empty()) return send;
  }
  const bool settled = std::none_of(agents_.begin(), agents_.end(), [&](const RolloutAgent& a) {
    return in_wave(a) && a.state == RolloutAgent::State::Sent;
  });
  if (!settled) return {};
  if (wave_ + 1 >= waves()) {
    phase_ = Phase::Complete;
    ended_at_ms_ = now_ms;
    return {};
  }
  if (now_ms - wave_started_ms_ < policy_.wave_interval_ms) return {};
  ++wave_;
  wave_sent_ = false;
  return step(report_of, now_ms);
}

void RolloutPlan::pause(std::int64_t) {
  if (phase_ == Phase::Running) phase_ = Phase::Paused;
}

void RolloutPlan::resume(std::int64_t) {
  if (phase_ == Phase::Paused) phase_ = Phase::Running;
}

void RolloutPlan::abort(const std::string& why, std::int64_t now_ms) {
  if (phase_ == Phase::Complete || phase_ == Phase::Aborted) return;
  phase_ = Phase::Aborted;
  stop_reason_ = why;
  ended_at_ms_ = now_ms;
}

json RolloutPlan::carries() const {
  json out = json::array();
  if (!bundle_.config.empty()) out.push_back("config");
  if (!bundle_.catalogue.empty()) out.push_back("catalogue");
  return out;
}

json RolloutPlan::to_json() const {
  json agents = json::array();
  for (const auto& a : agents_) {
    json j{{"post", a.post}, {"agent", a.agent}, {"region", a.region}, {"state", to_string(a.state)}, {"wave", a.wave}};
    if (a.sent_at_ms) j["sent_at_ms"] = a.sent_at_ms;
    if (!a.reason.empty()) j["reason"] = a.reason;
    agents.push_back(std::move(j));
  }
  json counts;
  for (auto s : {RolloutAgent::State::Waiting, RolloutAgent::State::Sent, RolloutAgent::State::Applied,
                 RolloutAgent::State::Failed})
    counts[std::string(to_string(s))] = count(s);
  return {{"id", id_},
          {"version", bundle_.version},
          {"target", bundle_.target.describe()},
          {"topic", bundle_topic(bundle_.target)},
          {"carries", carries()},
          {"note", bundle_.note},
          {"phase", to_string(phase_)},
          {"stop_reason", stop_reason_},
          {"created_by", created_by_},
          {"created_at_ms", created_at_ms_},
          {"ended_at_ms", ended_at_ms_},
          {"wave", wave_},
          {"waves", waves()},
          {"wave_sent", wave_sent_},
          {"wave_started_ms", wave_started_ms_},
          {"policy",
           {{"canary_percent", policy_.canary_percent},
            {"wave_percent", policy_.wave_percent},
            {"wave_interval_s", policy_.wave_interval_ms / 1000},
            {"max_failed_percent", policy_.max_failed_percent}}},
          {"counts", counts},
          {"agents", std::move(agents)},
          {"bundle", signed_text_}};
}

std::optional<RolloutPlan> RolloutPlan::from_json(const json& j, const std::vector<PublicKey>& keys,
                                                  std::string& error) {
  try {
    auto opened = open_bundle(j.at("bundle").get<std::string>(), keys);
    if (!opened.ok()) {
      error = "its bundle no longer opens: " + opened.error;
      return std::nullopt;
    }
    const auto& p = j.at("policy");
    RolloutPolicy policy{p.at("canary_percent").get<std::uint32_t>(), p.at("wave_percent").get<std::uint32_t>(),
                         p.at("wave_interval_s").get<std::int64_t>() * 1000,
                         p.at("max_failed_percent").get<std::uint32_t>()};
    std::vector<RolloutAgent> agents;
    for (const auto& a : j.at("agents")) {
      RolloutAgent r;
      r.post = a.at("post").get<std::string>();
      r.agent = a.at("agent").get<std::string>();
      r.region = a.at("region").get<std::string>();
      r.state = parse_name<RolloutAgent::State>(a.at("state").get<std::string>(), kStates)
                    .value_or(RolloutAgent::State::Waiting);
      r.sent_at_ms = a.value("sent_at_ms", std::int64_t{0});
      r.reason = a.value("reason", "");
      agents.push_back(std::move(r));
    }
    RolloutPlan plan(j.at("id").get<std::uint64_t>(), opened.bundle, j.at("bundle").get<std::string>(), policy,
                     std::move(agents), j.at("created_by").get<std::string>(),
                     j.at("created_at_ms").get<std::int64_t>());
    for (std::size_t i = 0; i < plan.agents_.size(); ++i) plan.agents_[i].wave = j.at("agents")[i].at("wave");
    plan.phase_ = parse_name<Phase>(j.at("phase").get<std::string>(), kPhases).value_or(Phase::Paused);
    plan.stop_reason_ = j.at("stop_reason").get<std::string>();
    plan.ended_at_ms_ = j.at("ended_at_ms").get<std::int64_t>();
    plan.wave_ = j.at("wave").get<std::uint32_t>();
    plan.wave_sent_ = j.at("wave_sent").get<bool>();
    plan.wave_started_ms_ = j.at("wave_started_ms").get<std::int64_t>();
    return plan;
  } catch (const json::exception& e) {
    error = std::string("not a rollout this aggregator wrote: ") + e.what();
    return std::nullopt;
  }
}

}  // namespace postwatch::aggregator
