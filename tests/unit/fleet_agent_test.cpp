// The agent's side of fleet bundles without a broker: what a bundle may change, the on-disk
// state across a SIGKILL at each step, and how a trial is judged (docs/fleet.md).
#include "postwatch/agent/bundle_overlay.hpp"
#include "postwatch/agent/bundle_store.hpp"
#include "postwatch/agent/fleet_bundles.hpp"
#include "postwatch/fleet_bundle.hpp"
#include "support/test_support.hpp"

#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include <csignal>
#include <fstream>

using namespace postwatch;
using namespace postwatch::agent;
using namespace postwatch::test;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string fields(const std::vector<ConfigProblem>& problems) {
  std::string out;
  for (const auto& p : problems) out += p.field + " ";
  return out;
}

const std::string kConfig = R"({"broker_uri": "tcp://127.0.0.1:1883", "allow_plaintext": true,
  "agent_id": "a1", "post_id": "bamako", "heartbeat_interval_s": 30})";

TEST(BundleOverlay, TuningFieldsMergeOverTheBoardsConfig) {
  std::vector<ConfigProblem> problems;
  auto text =
      apply_config_overlay(kConfig,
                           R"({"heartbeat_interval_s": 5, "batch": {"max_events": 50}, "spool": {"max_bytes": 1048576},
          "uplink": {"max_kbit_s": 64}, "probes": {"interval_s": 30}})",
                           problems);
  ASSERT_TRUE(problems.empty()) << fields(problems);
  auto j = json::parse(text);
  EXPECT_EQ(j["heartbeat_interval_s"], 5);
  EXPECT_EQ(j["batch"]["max_events"], 50);
  EXPECT_EQ(j["spool"]["max_bytes"], 1048576);
  EXPECT_EQ(j["broker_uri"], "tcp://127.0.0.1:1883");  // untouched
  // A merge patch's null removes a field: back to the default.
  text = apply_config_overlay(kConfig, R"({"heartbeat_interval_s": null})", problems);
  EXPECT_FALSE(json::parse(text).contains("heartbeat_interval_s"));
}

TEST(BundleOverlay, WhereDataGoesAndAsWhomStayWithTheBoard) {
  for (const char* overlay :
       {R"({"broker_uri": "tcp://evil:1883"})", R"({"tls": {"verify_hostname": false}})", R"({"username": "x"})",
        R"({"password_file": "/etc/shadow"})", R"({"identity": {"key_file": "k"}})", R"({"spool": {"dir": "/tmp"}})",
        R"({"spool": {"key_file": ""}})", R"({"uplink": {"proxy": "http://p:3128"}})",
        R"({"fleet": {"allow_scripts": true}})", R"({"allow_plaintext": true})", R"({"agent_id": "b2"})",
        R"({"catalogue_file": "x.json"})", R"({"delivery": {"confirm": "broker"}})",
        R"({"broker_fallbacks": ["tcp://evil:1883"]})"}) {
    std::vector<ConfigProblem> problems;
    EXPECT_TRUE(apply_config_overlay(kConfig, overlay, problems).empty()) << overlay;
    ASSERT_EQ(problems.size(), 1u) << overlay;
    EXPECT_EQ(problems[0].field.rfind("config.", 0), 0u) << problems[0].field;
    EXPECT_NE(problems[0].message.find("may not be changed by a bundle"), std::string::npos) << problems[0].message;
  }
}

TEST(BundleOverlay, ScriptsOnlyWhereTheBoardAllowsThem) {
  const char* overlay = R"({"scripts": [{"indicator": "agent_cpu_percent", "command": ["/bin/true"]}]})";
  std::vector<ConfigProblem> problems;
  EXPECT_TRUE(apply_config_overlay(kConfig, overlay, problems).empty());
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].field, "config.scripts");
  EXPECT_NE(problems[0].message.find("fleet.allow_scripts"), std::string::npos);

  auto allowing = json::parse(kConfig);
  allowing["fleet"] = {{"allow_scripts", true}};
  problems.clear();
  auto text = apply_config_overlay(allowing.dump(), overlay, problems);
  EXPECT_TRUE(problems.empty()) << fields(problems);
  EXPECT_EQ(json::parse(text)["scripts"].size(), 1u);
}

TEST(BundleOverlay, NotAnObjectIsRefused) {
  std::vector<ConfigProblem> problems;
  EXPECT_TRUE(apply_config_overlay(kConfig, "[1]", problems).empty());
  EXPECT_EQ(fields(problems), "config ");
}

// The steps an apply goes through, killed with SIGKILL right after `kill_after`; the state the
// next start finds must be the old one or the new one, never a mix.
BundleState apply_killed_after(const fs::path& dir, const std::string& kill_after, bool healthy) {
  pid_t child = ::fork();
  if (child == 0) {
    BundleStore store(dir);
    store.after_step = [&](std::string_view step) {
      if (step == kill_after) ::raise(SIGKILL);
    };
    store.keep(2, "signed bundle v2");
    store.begin_trial(2, BundleVersions{2, 1}, 0, 1000);
    if (healthy)
      store.commit_trial(2000);
    else
      store.roll_back("no health", 2000);
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_TRUE(WIFSIGNALED(status) || kill_after == "none") << kill_after;
  BundleStore after(dir);
  after.recover(3000);
  return after.state();
}

TEST(BundleStore, ASigkillAtEachStepLeavesTheOldStateOrTheNew) {
  const BundleVersions before{1, 1}, applied{2, 1};
  for (const auto& [step, healthy, expect] : {std::tuple{"keep", true, before},
                                              {"begin_trial", true, before},
                                              {"commit_trial", true, applied},
                                              {"roll_back", false, before},
                                              {"none", true, applied},
                                              {"none", false, before}}) {
    TempDir dir;
    {
      BundleStore store(dir.path());
      store.keep(1, "signed bundle v1");
      store.begin_trial(1, BundleVersions{1, 1}, 0, 0);
      store.commit_trial(0);
    }
    auto state = apply_killed_after(dir.path(), step, healthy);
    // After begin_trial, the next start judges the trial cut short: rolled back.
    BundleVersions want = expect;
    if (std::string(step) == "begin_trial") want = before;
    EXPECT_EQ(state.current.config, want.config) << step;
    EXPECT_EQ(state.current.catalogue, want.catalogue) << step;
    EXPECT_FALSE(state.trial.has_value()) << step;
    if (std::string(step) == "begin_trial") {
      EXPECT_EQ(state.last.kind, BundleOutcome::Kind::RolledBack);
      EXPECT_EQ(state.last.version, 2u);
      EXPECT_NE(state.last.reason.find("stopped before"), std::string::npos) << state.last.reason;
      EXPECT_EQ(state.newest_tried, 2u);  // not tried again
    }
    // What is in force is still held, whatever happened.
    EXPECT_FALSE(BundleStore(dir.path()).bundle_text(state.current.config).empty()) << step;
  }
}

TEST(BundleStore, OldBundlesArePrunedAndTheStateSurvivesAReopen) {
  TempDir dir;
  {
    BundleStore store(dir.path());
    for (std::uint64_t v = 1; v <= 4; ++v) {
      store.keep(v, "bundle " + std::to_string(v));
      store.begin_trial(v, BundleVersions{v, 1}, 0, 0);
      store.commit_trial(0);
    }
    store.refuse(5, "does not validate", 7);
  }
  BundleStore store(dir.path());
  EXPECT_EQ(store.state().current.config, 4u);
  EXPECT_EQ(store.state().previous.config, 3u);
  EXPECT_EQ(store.state().newest_tried, 5u);
  EXPECT_EQ(store.state().last.kind, BundleOutcome::Kind::Refused);
  EXPECT_EQ(store.state().last.reason, "does not validate");
  EXPECT_TRUE(store.bundle_text(2).empty());
  EXPECT_EQ(store.bundle_text(1), "bundle 1");  // the catalogue in force came with v1
  EXPECT_EQ(store.bundle_text(4), "bundle 4");
}

TEST(BundleStore, AStateFileItDidNotWriteIsNamed) {
  TempDir dir;
  std::ofstream(dir.path() / "state.json") << "{\"current\": 3}";
  try {
    BundleStore store(dir.path());
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("state.json"), std::string::npos) << e.what();
  }
}

// A board: its config file, the fleet's key, a spool directory.
struct Board {
  TempDir dir;
  SigningKey fleet_key = SigningKey::from_seed({7});
  fs::path config_file = dir.path() / "agent.json";
  std::shared_ptr<spdlog::logger> log =
      std::make_shared<spdlog::logger>("t", std::make_shared<spdlog::sinks::null_sink_mt>());
  std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now();

  Board() {
    std::ofstream(dir.path() / "fleet.pub") << to_hex(fleet_key.public_key()) << "\n";
    json c = json::parse(kConfig);
    c["catalogue_file"] = catalogue_path().string();
    c["spool"] = {{"dir", (dir.path() / "spool").string()}};
    c["fleet"] = {{"key_file", "fleet.pub"}};
    std::ofstream(config_file) << c.dump();
  }
  std::unique_ptr<FleetBundles> start(LoadedConfig& running) {
    auto check = AgentConfig::validate(config_file);
    EXPECT_TRUE(check.ok()) << check.describe_all();
    auto fleet = std::make_unique<FleetBundles>(config_file, fs::path(), *check.config, log);
    fleet->clock = [this] { return now; };
    running = fleet->start(LoadedConfig{*check.config, check.catalogue});
    return fleet;
  }
  std::string bundle(std::uint64_t version, const std::string& config, BundleTarget target = {}) const {
    FleetBundle b;
    b.version = version;
    b.target = target;
    b.config = config;
    b.health_deadline_s = 30;
    return sign_bundle(b, fleet_key);
  }
};

AgentStats healthy_stats() {
  AgentStats s;
  s.connected = true;
  s.births_sent = 1;
  return s;
}

TEST(FleetBundles, ABundleGoesOnTrialAndStaysWhenTheAgentShowsHealth) {
  Board board;
  LoadedConfig running;
  auto fleet = board.start(running);
  EXPECT_EQ(running.config.heartbeat_interval.count(), 30);
  fleet->offer(board.bundle(3, R"({"heartbeat_interval_s": 5})"));
  auto next = fleet->poll(AgentStats{}, {});
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->config.heartbeat_interval.count(), 5);
  EXPECT_TRUE(fleet->on_trial());
  EXPECT_EQ(fleet->report().last_outcome, FleetReport::Outcome::OnTrial);
  // Healthy at once, but judged only after the shortest trial.
  EXPECT_FALSE(fleet->poll(healthy_stats(), {}).has_value());
  EXPECT_TRUE(fleet->on_trial());
  board.now += fleet->min_trial;
  EXPECT_FALSE(fleet->poll(healthy_stats(), {}).has_value());
  EXPECT_FALSE(fleet->on_trial());
  auto r = fleet->report();
  EXPECT_EQ(r.last_outcome, FleetReport::Outcome::Applied);
  EXPECT_EQ(r.config_bundle, 3u);
  EXPECT_EQ(r.applied, 1u);
  // The retained copy again (a reconnect): nothing happens, nothing is counted.
  fleet->offer(board.bundle(3, R"({"heartbeat_interval_s": 5})"));
  EXPECT_FALSE(fleet->poll(healthy_stats(), {}).has_value());
  EXPECT_EQ(fleet->report().refused, 0u);
  // The next start runs the bundle.
  LoadedConfig again;
  board.start(again);
  EXPECT_EQ(again.config.heartbeat_interval.count(), 5);
}

TEST(FleetBundles, NoHealthByTheDeadlineRollsBackAndSaysWhy) {
  Board board;
  LoadedConfig running;
  auto fleet = board.start(running);
  fleet->offer(board.bundle(4, R"({"batch": {"max_events": 7}})"));
  ASSERT_TRUE(fleet->poll(AgentStats{}, {}).has_value());
  auto stats = healthy_stats();
  const std::vector<std::string> inputs{"script probe x: /bin/false: exit status 1"};
  board.now += std::chrono::seconds(29);
  EXPECT_FALSE(fleet->poll(stats, inputs).has_value());
  board.now += std::chrono::seconds(2);
  auto back = fleet->poll(stats, inputs);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->config.batch_max_events, 500u);  // the default again
  auto r = fleet->report();
  EXPECT_EQ(r.last_outcome, FleetReport::Outcome::RolledBack);
  EXPECT_EQ(r.last_version, 4u);
  EXPECT_NE(r.last_reason.find("script probe x"), std::string::npos) << r.last_reason;
  EXPECT_EQ(r.config_bundle, 0u);
  EXPECT_EQ(r.rolled_back, 1u);
  // Not tried again when its retained copy comes back.
  fleet->offer(board.bundle(4, R"({"batch": {"max_events": 7}})"));
  EXPECT_FALSE(fleet->poll(healthy_stats(), {}).has_value());
}

// A bundle after which the agent never gets its connection back (a keep-alive its broker will
// not keep, say): no health by the deadline, so back to what it ran, which connects again.
TEST(FleetBundles, ABundleThatLeavesTheAgentUnconnectedIsRolledBackAtTheDeadline) {
  Board board;
  LoadedConfig running;
  auto fleet = board.start(running);
  fleet->offer(board.bundle(5, R"({"keep_alive_s": 5})"));
  ASSERT_TRUE(fleet->poll(AgentStats{}, {}).has_value());
  AgentStats cut_off;  // connected false, no birth since the switch
  board.now += std::chrono::seconds(29);
  EXPECT_FALSE(fleet->poll(cut_off, {}).has_value());
  board.now += std::chrono::seconds(2);
  auto back = fleet->poll(cut_off, {});
  ASSERT_TRUE(back.has_value());
  auto r = fleet->report();
  EXPECT_EQ(r.last_outcome, FleetReport::Outcome::RolledBack);
  EXPECT_EQ(r.last_version, 5u);
  EXPECT_NE(r.last_reason.find("not connected"), std::string::npos) << r.last_reason;
  EXPECT_EQ(r.config_bundle, 0u);
}

TEST(FleetBundles, WhatIsNotSignedByTheFleetOrNotForThisAgentChangesNothing) {
  Board board;
  LoadedConfig running;
  auto fleet = board.start(running);
  const std::string good = board.bundle(5, R"({"heartbeat_interval_s": 9})");
  auto unsigned_one = json::parse(good);
  unsigned_one.erase("signature");
  FleetBundle b;
  b.version = 6;
  b.config = R"({"heartbeat_interval_s": 9})";
  auto forged = json::parse(good);
  forged["document"] = forged["document"].get<std::string>().replace(
      forged["document"].get<std::string>().find("\"version\":5"), 11, "\"version\":7");
  for (const std::string& bad :
       {unsigned_one.dump(), sign_bundle(b, SigningKey::from_seed({9})), forged.dump(), std::string("not json"),
        board.bundle(8, R"({"heartbeat_interval_s": 9})", BundleTarget{BundleTarget::Scope::Post, "", "kabul", ""}),
        board.bundle(9, R"({"heartbeat_interval_s": 9})",
                     BundleTarget{BundleTarget::Scope::Agent, "", "bamako", "another-agent"})}) {
    fleet->offer(bad);
    EXPECT_FALSE(fleet->poll(healthy_stats(), {}).has_value()) << bad;
  }
  // A retained bundle cleared (an aborted rollout) arrives empty: nothing to take, nothing refused.
  fleet->offer("");
  EXPECT_FALSE(fleet->poll(healthy_stats(), {}).has_value());
  EXPECT_EQ(fleet->report().refused, 6u);
  EXPECT_EQ(fleet->report().config_bundle, 0u);
  EXPECT_EQ(fleet->store().state().newest_tried, 0u);
  // An older bundle than one tried is a replay.
  fleet->offer(board.bundle(10, R"({"heartbeat_interval_s": 9})"));
  ASSERT_TRUE(fleet->poll(healthy_stats(), {}).has_value());
  board.now += fleet->min_trial;
  fleet->poll(healthy_stats(), {});
  fleet->offer(board.bundle(5, R"({"heartbeat_interval_s": 11})"));
  EXPECT_FALSE(fleet->poll(healthy_stats(), {}).has_value());
  EXPECT_EQ(fleet->report().refused, 7u);
  EXPECT_EQ(fleet->report().config_bundle, 10u);
  // During the next rollout the previous one's copy still sits on the target's topic: what the
  // agent ran before is not a replay, and is not counted as one.
  fleet->offer(board.bundle(12, R"({"heartbeat_interval_s": 12})"));
  ASSERT_TRUE(fleet->poll(healthy_stats(), {}).has_value());
  board.now += fleet->min_trial;
  fleet->poll(healthy_stats(), {});
  fleet->offer(board.bundle(10, R"({"heartbeat_interval_s": 9})"));
  EXPECT_FALSE(fleet->poll(healthy_stats(), {}).has_value());
  EXPECT_EQ(fleet->report().refused, 7u);
  EXPECT_EQ(fleet->report().config_bundle, 12u);
}

TEST(FleetBundles, ABundleThatDoesNotValidateIsRefusedBeforeAnythingChanges) {
  Board board;
  LoadedConfig running;
  auto fleet = board.start(running);
  for (const auto& [version, overlay] : {std::pair{11, R"({"broker_uri": "tcp://elsewhere:1883"})"},
                                         {12, R"({"heartbeat_interval_s": 0})"},
                                         {13, R"({"batch": {"max_events": "many"}})"}}) {
    fleet->offer(board.bundle(version, overlay));
    EXPECT_FALSE(fleet->poll(healthy_stats(), {}).has_value()) << overlay;
    const auto& last = fleet->store().state().last;
    EXPECT_EQ(last.kind, BundleOutcome::Kind::Refused) << overlay;
    EXPECT_EQ(last.version, static_cast<std::uint64_t>(version));
    EXPECT_FALSE(last.reason.empty());
  }
  EXPECT_NE(fleet->store().state().last.reason.find("batch.max_events"), std::string::npos)
      << fleet->store().state().last.reason;
  EXPECT_EQ(fleet->report().config_bundle, 0u);
  EXPECT_EQ(fleet->report().refused, 3u);
}

TEST(FleetBundles, ACatalogueWithoutThisPostIsRefused) {
  Board board;
  LoadedConfig running;
  auto fleet = board.start(running);
  std::ifstream in(catalogue_path());
  auto cat = json::parse(in);
  auto& posts = cat["posts"];
  for (auto it = posts.begin(); it != posts.end(); ++it)
    if ((*it)["id"] == "bamako") {
      posts.erase(it);
      break;
    }
  FleetBundle b;
  b.version = 14;
  b.catalogue = cat.dump();
  fleet->offer(sign_bundle(b, board.fleet_key));
  EXPECT_FALSE(fleet->poll(healthy_stats(), {}).has_value());
  EXPECT_NE(fleet->store().state().last.reason.find("bamako"), std::string::npos) << fleet->store().state().last.reason;
  // With the post, the catalogue goes on trial and its version is reported.
  std::ifstream in2(catalogue_path());
  auto whole = json::parse(in2);
  whole["catalogue_version"] = 2;
  b.version = 15;
  b.catalogue = whole.dump();
  fleet->offer(sign_bundle(b, board.fleet_key));
  auto next = fleet->poll(healthy_stats(), {});
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->catalogue->version(), 2u);
  EXPECT_EQ(fleet->report().catalogue_bundle, 15u);
  EXPECT_EQ(fleet->report().catalogue_version, 2u);
}

TEST(FleetBundles, TrialHealthNamesWhatIsMissing) {
  AgentStats s;
  EXPECT_NE(trial_health_problem(s, {}).find("not connected"), std::string::npos);
  s.connected = true;
  EXPECT_NE(trial_health_problem(s, {}).find("birth"), std::string::npos);
  s.births_sent = 1;
  s.backlog.events = 3;
  EXPECT_NE(trial_health_problem(s, {}).find("no event was sent"), std::string::npos);
  s.sent = 3;
  EXPECT_EQ(trial_health_problem(s, {}), "");
  EXPECT_EQ(trial_health_problem(s, {"drop_dir: gone"}), "drop_dir: gone");
}

}  // namespace
