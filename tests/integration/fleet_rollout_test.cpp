// Fleet rollouts end to end (docs/fleet.md, "Rollouts"): the real aggregator with --fleet-keys,
// ten real agents and Mosquitto. A catalogue rollout with a 20 % canary reaches every agent,
// and one offline meanwhile takes it when it comes back; a bundle whose canaries fail their
// health check is rolled back on them by themselves and the rollout stops before the next wave.
#include "postwatch/fleet_bundle.hpp"
#include "support/agent_config_file.hpp"
#include "support/aggregator_process.hpp"
#include "support/catalogue_edit.hpp"
#include "support/feed_http.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <fstream>

using namespace postwatch;
using namespace postwatch::test;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

class FleetRollout : public ::testing::Test {
 protected:
  TempDir dir;
  MosquittoBroker broker;
  TokensFile tokens{dir};
  SigningKey fleet_key = SigningKey::from_seed({11});
  fs::path pub = dir.path() / "fleet.pub";
  std::unique_ptr<AggregatorProcess> aggregator;
  std::vector<std::unique_ptr<ChildProcess>> agents;
  static constexpr int kAgents = 10;

  void SetUp() override {
    std::ofstream(pub) << to_hex(fleet_key.public_key()) << "\n";
    aggregator = std::make_unique<AggregatorProcess>(
        broker, dir, std::vector<std::string>{"--fleet-keys", pub.string(), "--tokens-file", tokens.path.string()});
    for (int i = 0; i < kAgents; ++i) {
      fs::create_directories(dir.path() / ("agent-" + std::to_string(i)));
      write_config(i, broker.uri());
      agents.push_back(nullptr);
      start(i);
    }
  }
  void start(int i) {
    const auto home = dir.path() / ("agent-" + std::to_string(i));
    agents[i] =
        std::make_unique<ChildProcess>(std::vector<std::string>{(binary_dir() / "agent" / "postwatch-agent").string(),
                                                                "run", "--config", (home / "agent.json").string()},
                                       home / "agent.log", /*pipe_stdin=*/true);
  }
  // The agents' fleet objects as the aggregator serves them, by "post/agent", online ones only.
  std::map<std::string, json> fleet_reports() {
    std::map<std::string, json> out;
    auto r = http_call(aggregator->port(), feedhttp::verb::get, "/api/v1/agents", bearer(TokensFile::kRead));
    for (const auto& a : r.json_at("agents"))
      if (a.value("online", false) && a.contains("fleet")) out[a["id"].get<std::string>()] = a["fleet"];
    return out;
  }
  HttpReply start_rollout(const std::string& bundle, int canary, int wave) {
    json body{{"bundle", json::parse(bundle)},
              {"canary_percent", canary},
              {"wave_percent", wave},
              {"wave_interval_s", 0},
              {"max_failed_percent", 20}};
    auto h = bearer(TokensFile::kOperator);
    h["Content-Type"] = "application/json";
    return http_call(aggregator->port(), feedhttp::verb::post, "/api/v1/rollouts", h, body.dump());
  }
  // Null while the aggregator does not answer (it restarts to adopt a rolled-out catalogue).
  json get(const std::string& target) {
    auto r = http_call(aggregator->port(), feedhttp::verb::get, target, bearer(TokensFile::kRead));
    return r.status == 200 ? json::parse(r.body, nullptr, false) : json();
  }
  json rollout(int id) { return get("/api/v1/rollouts/" + std::to_string(id)); }
  void write_config(int i, const std::string& broker_uri) {
    const auto home = dir.path() / ("agent-" + std::to_string(i));
    AgentConfigFile(broker_uri, "r" + std::to_string(i), i % 2 ? "bamako" : "kabul", home / "spool")
        .set("heartbeat_interval_s", 1)
        .set("fleet", {{"key_file", pub.string()}, {"allow_scripts", true}})
        .write(home / "agent.json");
  }
  json agent_status(int i) {
    std::ifstream in(dir.path() / ("agent-" + std::to_string(i)) / "spool" / "status.json");
    auto j = json::parse(in, nullptr, false);
    return j.is_object() ? j : json::object();  // not written yet
  }
  std::string logs() {
    std::string out = "--- aggregator\n" + aggregator->process().log();
    for (int i = 0; i < kAgents; ++i) {
      std::ifstream in(dir.path() / ("agent-" + std::to_string(i)) / "agent.log");
      out += "--- agent " + std::to_string(i) + "\n" + std::string(std::istreambuf_iterator<char>(in), {});
    }
    return out;
  }
  std::string bundle(std::uint64_t version, const std::string& config, const std::string& catalogue) {
    FleetBundle b;
    b.version = version;
    b.config = config;
    b.catalogue = catalogue;
    b.health_deadline_s = 10;
    b.note = "rollout test";
    return sign_bundle(b, fleet_key);
  }
};

TEST_F(FleetRollout, ACatalogueRolloutWithACanaryReachesEveryAgentAndOneOfflineTakesItWhenBack) {
  ASSERT_TRUE(wait_until([&] { return fleet_reports().size() == kAgents; }, std::chrono::seconds(30))) << logs();
  // One agent goes offline before the rollout.
  agents[9]->signal(SIGTERM);
  ASSERT_EQ(agents[9]->wait(std::chrono::seconds(15)), 0) << logs();
  ASSERT_TRUE(wait_until([&] { return fleet_reports().size() == kAgents - 1; }, std::chrono::seconds(15))) << logs();

  std::ifstream in(catalogue_path());
  auto cat = json::parse(in);
  cat["catalogue_version"] = 2;
  auto created = start_rollout(bundle(1, "", cat.dump()), 20, 40);
  ASSERT_EQ(created.status, 201) << created.body;
  auto r = created.json();
  EXPECT_EQ(r["agents"].size(), 9u);
  EXPECT_EQ(r["waves"], 3);  // of 9: 2 canaries (20 %, rounded up), then waves of 4 (40 %): 4 and 3
  EXPECT_EQ(r["carries"], json::array({"catalogue"}));

  ASSERT_TRUE(wait_until([&] { return rollout(1)["phase"] == "complete"; }, std::chrono::seconds(90))) << logs();
  r = rollout(1);
  EXPECT_EQ(r["counts"]["applied"], 9) << r.dump(1);
  EXPECT_EQ(r["counts"]["failed"], 0) << r.dump(1);
  for (const auto& [id, f] : fleet_reports()) {
    EXPECT_EQ(f["catalogue_bundle"], 1) << id;
    EXPECT_EQ(f["catalogue_version"], 2) << id;
  }
  // The canaries went first: every agent of wave 0 was sent before any of wave 1.
  std::int64_t last_canary = 0, first_wave = INT64_MAX;
  for (const auto& a : r["agents"]) {
    if (a["wave"] == 0) last_canary = std::max(last_canary, a["sent_at_ms"].get<std::int64_t>());
    if (a["wave"] == 1) first_wave = std::min(first_wave, a["sent_at_ms"].get<std::int64_t>());
  }
  EXPECT_LT(last_canary, first_wave);

  // Back online: it takes the bundle from the fleet topic, retained.
  start(9);
  EXPECT_TRUE(wait_until(
      [&] {
        auto reports = fleet_reports();
        auto it = reports.find("bamako/r9");
        return it != reports.end() && it->second["catalogue_bundle"] == 1 && it->second["last_outcome"] == "applied";
      },
      std::chrono::seconds(30)))
      << logs();
  auto metrics = http_get(aggregator->port(), "/metrics");
  EXPECT_NE(metrics.body.find("postwatch_rollouts{phase=\"complete\"} 1"), std::string::npos) << metrics.body;
  EXPECT_NE(metrics.body.find("postwatch_fleet_agents{last_outcome=\"applied\"} 10"), std::string::npos)
      << metrics.body;
  EXPECT_NE(metrics.body.find("postwatch_fleet_bundle_outcomes{outcome=\"applied\"} 10"), std::string::npos)
      << metrics.body;
}

TEST_F(FleetRollout, FailingCanariesRollBackByThemselvesAndTheRolloutStopsBeforeTheNextWave) {
  ASSERT_TRUE(wait_until([&] { return fleet_reports().size() == kAgents; }, std::chrono::seconds(30))) << logs();
  const json failing{
      {"heartbeat_interval_s", 1},
      {"scripts", {{{"indicator", "agent_cpu_percent"}, {"command", {"/bin/false"}}, {"interval_s", 60}}}}};
  auto created = start_rollout(bundle(2, failing.dump(), ""), 20, 40);
  ASSERT_EQ(created.status, 201) << created.body;
  ASSERT_TRUE(wait_until([&] { return rollout(1)["phase"] == "aborted"; }, std::chrono::seconds(60))) << logs();
  auto r = rollout(1);
  // It stops at the first canary that fails (1 of 1 reached is over 20 %), or both.
  EXPECT_NE(r["stop_reason"].get<std::string>().find("agents reached failed to apply it (more than 20 %)"),
            std::string::npos)
      << r.dump(1);
  EXPECT_EQ(r["counts"]["waiting"], 8) << r.dump(1);
  EXPECT_GE(r["counts"]["failed"], 1) << r.dump(1);
  std::set<std::string> canaries;
  for (const auto& a : r["agents"])
    if (a["wave"] == 0) {
      canaries.insert(a["post"].get<std::string>() + "/" + a["agent"].get<std::string>());
      if (a["state"] == "failed")
        EXPECT_NE(a.value("reason", "").find("script probe"), std::string::npos) << a.dump();
      else
        EXPECT_EQ(a["state"], "sent") << a.dump();  // on trial when the other failed
    }
  ASSERT_EQ(canaries.size(), 2u);
  // The canaries are back on what they ran; nobody else ever saw v2.
  ASSERT_TRUE(wait_until(
      [&] {
        auto reports = fleet_reports();
        for (const auto& id : canaries)
          if (!reports.count(id) || reports[id]["last_outcome"] != "rolled_back") return false;
        return true;
      },
      std::chrono::seconds(20)))
      << logs();
  for (const auto& [id, f] : fleet_reports()) {
    EXPECT_EQ(f["config_bundle"], 0) << id;
    if (!canaries.count(id)) {
      EXPECT_EQ(f["last_version"], 0) << id;
    }
  }
  // A second rollout of the same version is refused: agents would take it as a replay.
  EXPECT_EQ(start_rollout(bundle(2, failing.dump(), ""), 20, 40).status, 409);
  // Read tokens may look, not start.
  auto h = bearer(TokensFile::kRead);
  h["Content-Type"] = "application/json";
  EXPECT_EQ(http_call(aggregator->port(), feedhttp::verb::post, "/api/v1/rollouts", h, "{}").status, 403);
}

// The headline of docs/fleet.md, "A new indicator": the operations centre adds an indicator to
// the whole fleet without touching a post. The aggregator adopts the catalogue first (and
// restarts on it), then the agents get it; events an agent spooled under the old catalogue
// while it was cut off are accepted after the fleet moved on, in batches that say so.
TEST_F(FleetRollout, ANewIndicatorReachesTheFleetThroughTheAggregatorAndEventsSpooledUnderTheOldCatalogueStillCount) {
  ASSERT_TRUE(wait_until([&] { return fleet_reports().size() == kAgents; }, std::chrono::seconds(30))) << logs();
  std::ifstream in(catalogue_path());
  auto cat = json::parse(in);
  const std::uint32_t v1 = cat.value("catalogue_version", 0u);
  // Agent 9 loses its broker; what it reads meanwhile waits in its spool, checked against v1.
  agents[9]->signal(SIGTERM);
  ASSERT_EQ(agents[9]->wait(std::chrono::seconds(15)), 0) << logs();
  write_config(9, "tcp://127.0.0.1:" + std::to_string(free_port()));
  start(9);
  for (int i = 0; i < 20; ++i)
    ASSERT_TRUE(agents[9]->write_stdin(R"({"indicator": "terrorism_threat_level", "value": 3})"
                                       "\n"));
  ASSERT_TRUE(wait_until([&] { return agent_status(9).value("events_accepted", 0) == 20; }, std::chrono::seconds(15)))
      << logs();
  ASSERT_TRUE(wait_until([&] { return fleet_reports().size() == kAgents - 1; }, std::chrono::seconds(15))) << logs();

  // v2: one more indicator. The aggregator does not know it yet.
  cat = catalogue_with_indicator("border_crossings_closed", "Border crossings closed", v1 + 1);
  ASSERT_EQ(get("/api/v1/rollouts")["catalogue_version"], v1);
  auto created = start_rollout(bundle(3, "", cat.dump()), 20, 50);
  ASSERT_EQ(created.status, 201) << created.body;
  EXPECT_EQ(created.json()["catalogue_version"], v1 + 1);
  EXPECT_NE(created.json().value("waiting_for", "").find("catalogue_version"), std::string::npos) << created.body;
  // It restarts on v2 (the same process), then the rollout goes on to every agent online.
  ASSERT_TRUE(
      wait_until([&] { return get("/api/v1/rollouts")["catalogue_version"] == v1 + 1; }, std::chrono::seconds(60)))
      << logs();
  EXPECT_TRUE(aggregator->process().running());
  ASSERT_TRUE(wait_until([&] { return rollout(1)["phase"] == "complete"; }, std::chrono::seconds(90))) << logs();
  EXPECT_EQ(rollout(1)["counts"]["applied"], kAgents - 1) << rollout(1).dump(1);
  EXPECT_NE(aggregator->process().log().find("adopted catalogue_version"), std::string::npos);

  // Every agent that took it reports the new indicator, and the aggregator applies it.
  for (int i = 0; i < kAgents - 1; ++i)
    ASSERT_TRUE(agents[i]->write_stdin(R"({"indicator": "border_crossings_closed", "value": 4})"
                                       "\n"));
  for (const char* post : {"kabul", "bamako"})
    EXPECT_TRUE(wait_until(
        [&] {
          auto p = get(std::string("/api/v1/posts/") + post);
          if (!p.is_object()) return false;
          for (const auto& i : p["indicators"])
            if (i["id"] == "border_crossings_closed" && i["last_reading"] == 4) return true;
          return false;
        },
        std::chrono::seconds(30)))
        << post << "\n"
        << logs();
  // Each took v2 and said so in its batch (another agent of the same post may have been first).
  for (int i = 0; i < kAgents - 1; ++i) {
    const std::string id = std::string(i % 2 ? "bamako" : "kabul") + "/r" + std::to_string(i);
    EXPECT_TRUE(wait_until(
        [&] {
          auto a = get("/api/v1/agents/" + id);
          return a.is_object() && a["events"].is_object() && a["events"]["catalogue_version"] == v1 + 1;
        },
        std::chrono::seconds(30)))
        << id << "\n"
        << logs();
  }

  // Agent 9 comes back: its v1 events arrive in v1 batches, and count.
  write_config(9, broker.uri());
  agents[9]->signal(SIGTERM);
  ASSERT_EQ(agents[9]->wait(std::chrono::seconds(15)), 1) << logs();  // 1: events left in its spool
  start(9);
  ASSERT_TRUE(wait_until(
      [&] {
        auto a = get("/api/v1/agents/bamako/r9");
        return a.is_object() && a["events"].is_object() && a["events"]["received"] == 20;
      },
      std::chrono::seconds(30)))
      << logs();
  EXPECT_EQ(get("/api/v1/agents/bamako/r9")["events"]["catalogue_version"], v1);
  ASSERT_TRUE(wait_until([&] { return agent_status(9).value("events_confirmed", 0) == 20; }, std::chrono::seconds(30)))
      << logs();
  // It takes v2 from the fleet topic, and its next event is a v2 one.
  ASSERT_TRUE(wait_until(
      [&] {
        auto r = fleet_reports();
        return r.count("bamako/r9") && r["bamako/r9"]["catalogue_version"] == v1 + 1;
      },
      std::chrono::seconds(30)))
      << logs();
  ASSERT_TRUE(agents[9]->write_stdin(R"({"indicator": "border_crossings_closed", "value": 2})"
                                     "\n"));
  ASSERT_TRUE(
      wait_until([&] { return get("/api/v1/agents/bamako/r9")["events"]["received"] == 21; }, std::chrono::seconds(30)))
      << logs();
  EXPECT_EQ(get("/api/v1/agents/bamako/r9")["events"]["catalogue_version"], v1 + 1);
  auto stats = get("/api/v1/stats");
  EXPECT_EQ(stats["events_unknown_indicator"], 0) << stats.dump(1);
  EXPECT_EQ(stats["events_bad_value"], 0) << stats.dump(1);
}

}  // namespace
