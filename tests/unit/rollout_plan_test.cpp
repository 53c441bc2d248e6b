// Staged rollouts without a broker (docs/fleet.md, "Rollouts"): the canary first, waves only
// once the one before settled and the interval passed, a stop by itself above the failure
// share, and a desk that keeps its rollouts across a restart.
#include "rollouts/rollout_desk.hpp"
#include "support/test_support.hpp"

#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <gtest/gtest.h>

#include <map>

using namespace postwatch;
using namespace postwatch::aggregator;
using namespace postwatch::test;

namespace {

const SigningKey& fleet_key() {
  static const auto key = SigningKey::from_seed({5});
  return key;
}

std::string signed_bundle(std::uint64_t version, BundleTarget target = {}) {
  FleetBundle b;
  b.version = version;
  b.target = target;
  b.config = R"({"heartbeat_interval_s": 5})";
  b.health_deadline_s = 30;
  return sign_bundle(b, fleet_key());
}

std::vector<RolloutCandidate> fleet(std::size_t n, std::map<std::string, FleetReport>& reports) {
  std::vector<RolloutCandidate> out;
  for (std::size_t i = 0; i < n; ++i) {
    const std::string post = i % 2 ? "bamako" : "kabul";
    const std::string agent = "a" + std::to_string(i);
    reports[post + "/" + agent] = FleetReport{};
    out.push_back({i % 2 ? "sub-saharan-africa" : "asia", post, agent, &reports[post + "/" + agent]});
  }
  return out;
}

struct Fleet {
  std::map<std::string, FleetReport> reports;
  std::vector<RolloutCandidate> agents = fleet(10, reports);
  std::vector<std::pair<std::string, std::string>> published;
  RolloutDesk::ReportOf report_of = [this](const RolloutAgent& a) -> const FleetReport* {
    auto it = reports.find(a.post + "/" + a.agent);
    return it == reports.end() ? nullptr : &it->second;
  };
  RolloutDesk::Publish publish = [this](const std::string& t, const std::string& p) { published.emplace_back(t, p); };
  // Every agent sent to reports `outcome` for `version`.
  void answer(const RolloutPlan& plan, FleetReport::Outcome outcome, std::uint64_t version, const char* reason = "") {
    for (const auto& a : plan.agents())
      if (a.state == RolloutAgent::State::Sent) {
        auto& r = reports[a.post + "/" + a.agent];
        r.last_outcome = outcome;
        r.last_version = version;
        r.last_reason = reason;
        if (outcome == FleetReport::Outcome::Applied) r.config_bundle = version;
      }
  }
};

std::shared_ptr<spdlog::logger> quiet() {
  return std::make_shared<spdlog::logger>("t", std::make_shared<spdlog::sinks::null_sink_mt>());
}

TEST(RolloutPlan, TheCanaryFirstThenWavesOnceTheOneBeforeSettledAndTheIntervalPassed) {
  TempDir dir;
  Fleet f;
  RolloutDesk desk({fleet_key().public_key()}, dir.path() / "rollouts.json", quiet());
  RolloutPolicy policy{20, 40, 60000, 20};
  const auto& plan = desk.create(signed_bundle(3), policy, "ops", f.agents, 0);
  EXPECT_EQ(plan.agents().size(), 10u);
  EXPECT_EQ(plan.waves(), 3u);  // 2 canaries, then 4 and 4
  desk.tick(f.report_of, f.publish, 0);
  ASSERT_EQ(f.published.size(), 2u);
  EXPECT_EQ(f.published[0].first.rfind("postwatch/v1/fleet/bundle/agent/", 0), 0u) << f.published[0].first;
  // On trial: not settled; nothing more goes out.
  f.answer(plan, FleetReport::Outcome::OnTrial, 3);
  desk.tick(f.report_of, f.publish, 70000);
  EXPECT_EQ(f.published.size(), 2u);
  f.answer(plan, FleetReport::Outcome::Applied, 3);
  desk.tick(f.report_of, f.publish, 70000);
  EXPECT_EQ(f.published.size(), 6u);  // the first wave, the interval having passed
  EXPECT_EQ(plan.count(RolloutAgent::State::Applied), 2u);
  f.answer(plan, FleetReport::Outcome::Applied, 3);
  desk.tick(f.report_of, f.publish, 80000);
  EXPECT_EQ(f.published.size(), 6u);  // settled, but within the interval of the wave's start
  desk.tick(f.report_of, f.publish, 130000);
  EXPECT_EQ(f.published.size(), 10u);
  f.answer(plan, FleetReport::Outcome::Applied, 3);
  desk.tick(f.report_of, f.publish, 131000);
  EXPECT_EQ(plan.phase(), RolloutPlan::Phase::Complete);
  EXPECT_EQ(plan.count(RolloutAgent::State::Applied), 10u);
  // Last, on the target's own topic, for agents that come later.
  EXPECT_EQ(f.published.back().first, "postwatch/v1/fleet/bundle/all");
}

TEST(RolloutPlan, FailingCanariesStopItBeforeTheNextWaveAndItsCopiesAreCleared) {
  TempDir dir;
  Fleet f;
  RolloutDesk desk({fleet_key().public_key()}, dir.path() / "rollouts.json", quiet());
  const auto& plan = desk.create(signed_bundle(4), RolloutPolicy{20, 40, 0, 20}, "ops", f.agents, 0);
  desk.tick(f.report_of, f.publish, 0);
  ASSERT_EQ(f.published.size(), 2u);
  f.answer(plan, FleetReport::Outcome::RolledBack, 4, "no health within the deadline: not connected");
  desk.tick(f.report_of, f.publish, 1000);
  EXPECT_EQ(plan.phase(), RolloutPlan::Phase::Aborted);
  EXPECT_NE(plan.stop_reason().find("2 of the 2 agents reached failed"), std::string::npos) << plan.stop_reason();
  EXPECT_EQ(plan.count(RolloutAgent::State::Waiting), 8u);  // never sent
  ASSERT_EQ(f.published.size(), 4u);                        // the two copies cleared
  EXPECT_EQ(f.published[2].second, "");
  EXPECT_NE(plan.agents()[0].reason.find("not connected"), std::string::npos);
  desk.tick(f.report_of, f.publish, 100000);
  EXPECT_EQ(f.published.size(), 4u);
}

TEST(RolloutPlan, ASilentAgentCountsAsFailedAfterItsDeadlineAndGrace) {
  TempDir dir;
  Fleet f;
  RolloutDesk desk({fleet_key().public_key()}, dir.path() / "rollouts.json", quiet());
  // 50 % may fail: one silent canary of two does not stop it.
  const auto& plan = desk.create(signed_bundle(5), RolloutPolicy{20, 100, 0, 50}, "ops", f.agents, 0);
  desk.tick(f.report_of, f.publish, 0);
  auto& first = f.reports[plan.agents()[0].post + "/" + plan.agents()[0].agent];
  first.last_outcome = FleetReport::Outcome::Applied;
  first.last_version = 5;
  first.config_bundle = 5;
  desk.tick(f.report_of, f.publish, 30000 + 59000);
  EXPECT_EQ(plan.count(RolloutAgent::State::Sent), 1u);
  desk.tick(f.report_of, f.publish, 30000 + 61000);
  EXPECT_EQ(plan.agents()[1].state, RolloutAgent::State::Failed);
  EXPECT_NE(plan.agents()[1].reason.find("no report"), std::string::npos) << plan.agents()[1].reason;
  EXPECT_EQ(plan.phase(), RolloutPlan::Phase::Running);
  EXPECT_EQ(f.published.size(), 10u);  // the rest in one wave
}

TEST(RolloutDesk, RefusesWhatAgentsWouldRefuseAndKeepsItsRolloutsAcrossARestart) {
  TempDir dir;
  Fleet f;
  const auto file = dir.path() / "rollouts.json";
  {
    RolloutDesk none({}, file, quiet());
    try {
      none.create(signed_bundle(1), {}, "ops", f.agents, 0);
      FAIL();
    } catch (const RolloutError& e) {
      EXPECT_EQ(e.status, 503);
    }
  }
  RolloutDesk desk({fleet_key().public_key()}, file, quiet());
  auto refused = [&](const std::string& text, const RolloutPolicy& policy) {
    try {
      desk.create(text, policy, "ops", f.agents, 0);
    } catch (const RolloutError& e) {
      return e.status;
    }
    return 0;
  };
  EXPECT_EQ(refused("{}", {}), 400);
  FleetBundle other;
  other.version = 9;
  other.config = "{}";
  EXPECT_EQ(refused(sign_bundle(other, SigningKey::from_seed({6})), {}), 400);
  EXPECT_EQ(refused(signed_bundle(2), RolloutPolicy{0, 10, 0, 10}), 400);
  // Only the agents the bundle addresses.
  const auto& plan =
      desk.create(signed_bundle(2, {BundleTarget::Scope::Post, "", "bamako", ""}), {}, "ops", f.agents, 0);
  EXPECT_EQ(plan.agents().size(), 5u);
  EXPECT_EQ(refused(signed_bundle(2), {}), 409);  // not newer
  desk.tick(f.report_of, f.publish, 0);
  desk.pause(plan.id(), 1);

  RolloutDesk again({fleet_key().public_key()}, file, quiet());
  ASSERT_NE(again.find(plan.id()), nullptr);
  const auto& back = *again.find(plan.id());
  EXPECT_EQ(back.phase(), RolloutPlan::Phase::Paused);
  EXPECT_EQ(back.count(RolloutAgent::State::Sent), plan.count(RolloutAgent::State::Sent));
  EXPECT_EQ(back.agents()[0].agent, plan.agents()[0].agent);
  EXPECT_EQ(back.bundle().version, 2u);
  again.resume(plan.id(), 2);
  again.abort(plan.id(), "ops-2", 3);
  EXPECT_EQ(again.find(plan.id())->stop_reason(), "aborted by ops-2");
  try {
    again.abort(plan.id(), "ops-2", 4);
    FAIL();
  } catch (const RolloutError& e) {
    EXPECT_EQ(e.status, 409);
  }
}

}  // namespace
