#include "scenario_runner.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <stdexcept>

namespace postwatch::sim {

namespace {

std::string join_indicators(const IndicatorCatalogue& catalogue, const std::vector<std::uint32_t>& indicators) {
  std::string out;
  for (auto i : indicators) out += (out.empty() ? "" : ", ") + catalogue.indicators()[i].id;
  return out;
}

}  // namespace

bool ScenarioRunner::needs_relay(const Scenario& scenario) {
  return scenario.has(StepAction::Silence) || scenario.has(StepAction::BrokerOutage);
}

ScenarioRunner::ScenarioRunner(const Scenario& scenario, const IndicatorCatalogue& catalogue, Simulation& world,
                               UplinkRelay* relay, BrokerControl* broker, std::shared_ptr<spdlog::logger> log)
    : scenario_(scenario), catalogue_(catalogue), world_(world), relay_(relay), broker_(broker), log_(std::move(log)) {
  if (!relay_ && needs_relay(scenario))
    throw std::logic_error("scenario " + scenario.name + " cuts uplinks but the simulator has no relay");
  for (const auto& st : scenario_.steps) {
    steps_.push_back(resolve(st));
    const Step& s = steps_.back();
    bool targets_posts = !st.posts.empty() || !st.regions.empty();
    if (targets_posts && s.posts.empty())
      log_->warn("scenario {}: step {} ({}) applies to no post of this fleet; it only logs", scenario_.name, st.index,
                 to_string(st.action));
  }
}

ScenarioRunner::Step ScenarioRunner::resolve(const ScenarioStep& step) const {
  Step s;
  s.step = &step;
  for (std::size_t p = 0; p < world_.post_count(); ++p) {
    std::uint32_t cat = world_.catalogue_post(p);
    bool named = std::find(step.posts.begin(), step.posts.end(), cat) != step.posts.end();
    bool in_region =
        std::find(step.regions.begin(), step.regions.end(), catalogue_.posts()[cat].region) != step.regions.end();
    if (named || in_region) {
      s.posts.push_back(p);
      s.where += (s.where.empty() ? "" : ", ") + catalogue_.posts()[cat].id;
    }
  }
  return s;
}

std::string ScenarioRunner::label(const Step& s) const {
  return "scenario step " + std::to_string(s.step->index) + " (" + std::string(to_string(s.step->action)) + ")";
}

void ScenarioRunner::advance(double elapsed_s, std::int64_t now_ms) {
  // Ends before starts, so a step may begin the moment another ends.
  for (auto it = running_.begin(); it != running_.end();) {
    if (elapsed_s >= it->end_s) {
      end(steps_[it->step]);
      it = running_.erase(it);
    } else {
      ++it;
    }
  }
  while (next_ < steps_.size() && elapsed_s >= cycle_start_s_ + steps_[next_].step->at_s) {
    const Step& s = steps_[next_];
    begin(s, now_ms);
    if (s.step->duration_s > 0) running_.push_back({next_, cycle_start_s_ + s.step->end_s()});
    ++next_;
  }
  if (scenario_.repeat_every_s > 0 && next_ == steps_.size() && running_.empty() &&
      elapsed_s >= cycle_start_s_ + scenario_.repeat_every_s) {
    cycle_start_s_ += scenario_.repeat_every_s;
    next_ = 0;
    log_->info("scenario {}: the timeline starts again (pass {})", scenario_.name, ++cycle_);
  }
}

void ScenarioRunner::begin(const Step& s, std::int64_t now_ms) {
  const ScenarioStep& st = *s.step;
  switch (st.action) {
    case StepAction::Escalate:
      log_->info("{} starts: {} → {} for {:.0f} s at {}{}", label(s), join_indicators(catalogue_, st.indicators),
                 st.level == Alert::Red ? "red" : "amber", st.duration_s, s.where,
                 st.text.empty() ? "" : ": \"" + st.text + "\"");
      world_.escalate(s.posts, st.indicators, st.level, now_ms + static_cast<std::int64_t>(st.duration_s * 1000),
                      st.text);
      break;
    case StepAction::Silence:
      log_->info(
          "{} starts: silence at {} for {:.0f} s: uplink cut, no heartbeats or events get out (the agents "
          "keep spooling)",
          label(s), s.where, st.duration_s);
      cut(s, false);
      break;
    case StepAction::BrokerOutage:
      if (broker_) {
        log_->info("{} starts: the broker goes away for {:.0f} s (stop command)", label(s), st.duration_s);
        // Agents that reconnect while the broker shuts down are refused by the relay rather
        // than half-accepted by the dying broker (see uplink_relay.hpp).
        for_each_agent([&](std::size_t a) { relay_->stop_accepting(a); });
        broker_->stop_broker();
      } else {
        log_->info(
            "{} starts: every agent's uplink is cut for {:.0f} s (no --broker-stop-cmd/--broker-start-cmd: "
            "the broker itself stays up)",
            label(s), st.duration_s);
        for_each_agent([&](std::size_t a) { relay_->cut(a); });
      }
      break;
    case StepAction::Note:
      log_->info("{}{}: \"{}\"", label(s), s.posts.empty() ? "" : " filed by " + s.where, st.text);
      for (auto p : s.posts) world_.file_note(p, st.text);
      break;
  }
}

void ScenarioRunner::end(const Step& s) {
  const ScenarioStep& st = *s.step;
  switch (st.action) {
    case StepAction::Escalate:
      log_->info("{} ends: {} at {} ease back", label(s), join_indicators(catalogue_, st.indicators), s.where);
      break;
    case StepAction::Silence:
      log_->info("{} ends: {} uplink restored; the agents reconnect after their backoff (up to 30 s)", label(s),
                 s.where);
      cut(s, true);
      break;
    case StepAction::BrokerOutage:
      if (broker_) {
        log_->info("{} ends: the broker comes back (start command)", label(s));
        // Once it accepts connections again, so do the agents' uplinks; on the worker thread.
        std::vector<std::size_t> agents;
        for_each_agent([&](std::size_t a) { agents.push_back(a); });
        broker_->start_broker([relay = relay_, log = log_, agents = std::move(agents)](bool ok) {
          if (!ok) log->warn("the broker start command failed; letting the agents try anyway");
          for (auto a : agents) relay->resume_accepting(a);
        });
      } else {
        log_->info("{} ends: every agent's uplink restored", label(s));
        for_each_agent([&](std::size_t a) { relay_->restore(a); });
      }
      break;
    case StepAction::Note: break;
  }
}

void ScenarioRunner::cut(const Step& s, bool restore) {
  for (auto p : s.posts)
    for (auto a : world_.agents_of(p)) restore ? relay_->restore(a) : relay_->cut(a);
}

void ScenarioRunner::for_each_agent(const std::function<void(std::size_t)>& f) const {
  for (std::size_t p = 0; p < world_.post_count(); ++p)
    for (auto a : world_.agents_of(p)) f(a);
}

void ScenarioRunner::finish() {
  for (const auto& r : running_) {
    log_->info("{}: the run ends before the step does; ending it now", label(steps_[r.step]));
    end(steps_[r.step]);
  }
  running_.clear();
  if (broker_) broker_->wait_idle();
}

}  // namespace postwatch::sim
