// postwatch-fleet rollout against the real aggregator (--fleet-keys, --tokens-file), Mosquitto and
// two real agents (docs/fleet.md, "Rollouts"): a bundle made by postwatch-fleet keygen and sign is
// rolled out, shown, paused, resumed and aborted from the command line, each step checked through
// the API; a read token, a wrong token and no token are refused with one line naming why; over
// https the aggregator's certificate is verified against --ca, and refused without it.
#include "support/agent_config_file.hpp"
#include "support/aggregator_process.hpp"
#include "support/feed_http.hpp"
#include "support/self_signed_cert.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <regex>

using namespace postwatch;
using namespace postwatch::test;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string fleet_tool() { return (binary_dir() / "tools" / "fleet" / "postwatch-fleet").string(); }

class FleetRolloutCli : public ::testing::Test {
 protected:
  TempDir dir;
  MosquittoBroker broker;
  TokensFile tokens{dir};
  std::unique_ptr<AggregatorProcess> aggregator;
  std::vector<std::unique_ptr<ChildProcess>> agents;

  void SetUp() override {
    ASSERT_EQ(fleet("keygen --out " + at("keys")).status, 0);
    for (const auto& [name, token] :
         {std::pair{"operator.token", TokensFile::kOperator}, std::pair{"read.token", TokensFile::kRead},
          std::pair{"wrong.token", "wrong-token-0123456789abcdef"}})
      std::ofstream(dir.path() / name) << token << "\n";
    aggregator = std::make_unique<AggregatorProcess>(
        broker, dir,
        std::vector<std::string>{"--fleet-keys", (dir.path() / "keys" / "fleet.pub").string(), "--tokens-file",
                                 tokens.path.string()});
  }
  std::string at(const std::string& name) const { return shell_quoted((dir.path() / name).string()); }
  std::string api() const { return "http://127.0.0.1:" + std::to_string(aggregator->port()); }
  // postwatch-fleet with `args`; `env`: VAR=value ... for this run only.
  CommandResult fleet(const std::string& args, const std::string& env = "") const {
    return run_shell((env.empty() ? "" : "env " + env + " ") + shell_quoted(fleet_tool()) + " " + args);
  }
  // postwatch-fleet rollout SUB … against the test's aggregator with the token in `token_file`.
  CommandResult rollout(const std::string& args, const std::string& token_file = "operator.token") const {
    return fleet("rollout " + args + " --aggregator " + api() + " --token-file " + at(token_file));
  }
  json api_rollout(int id) {
    return http_call(aggregator->port(), feedhttp::verb::get, "/api/v1/rollouts/" + std::to_string(id),
                     bearer(TokensFile::kRead))
        .json();
  }
  void start_agents(int count) {
    for (int i = 0; i < count; ++i) {
      const auto home = dir.path() / ("agent-" + std::to_string(i));
      fs::create_directories(home);
      AgentConfigFile(broker.uri(), "r" + std::to_string(i), i % 2 ? "bamako" : "kabul", home / "spool")
          .set("heartbeat_interval_s", 1)
          .set("fleet", {{"key_file", (dir.path() / "keys" / "fleet.pub").string()}})
          .write(home / "agent.json");
      agents.push_back(
          std::make_unique<ChildProcess>(std::vector<std::string>{(binary_dir() / "agent" / "postwatch-agent").string(),
                                                                  "run", "--config", (home / "agent.json").string()},
                                         home / "agent.log", /*pipe_stdin=*/true));
    }
  }
  // Agents online that take bundles, as the aggregator sees them.
  std::size_t fleet_agents_online() {
    std::size_t n = 0;
    for (const auto& a : http_call(aggregator->port(), feedhttp::verb::get, "/api/v1/agents", bearer(TokensFile::kRead))
                             .json_at("agents"))
      if (a.value("online", false) && a.contains("fleet")) ++n;
    return n;
  }
  // A config bundle signed by postwatch-fleet sign with the fleet key keygen made.
  void sign(const std::string& out, int version) {
    std::ofstream(dir.path() / "overlay.json") << R"({"heartbeat_interval_s": 2})";
    const auto r = fleet("sign --key " + at("keys/fleet.key") + " --version " + std::to_string(version) +
                         " --target fleet --config " + at("overlay.json") + " --health-deadline-s 10 --out " + at(out));
    ASSERT_EQ(r.status, 0) << r.output;
  }
};

bool has(const std::string& output, const std::string& text) { return output.find(text) != std::string::npos; }

}  // namespace

TEST_F(FleetRolloutCli, CreateShowPauseResumeAbortFromTheCommandLine) {
  start_agents(2);
  ASSERT_TRUE(wait_until([&] { return fleet_agents_online() == 2; }, std::chrono::seconds(30)))
      << aggregator->process().log();
  sign("bundle-1.json", 1);
  // One canary, then one wave an hour later: the rollout stays running while the test steers it,
  // and never stops by itself (--max-failed-percent 100).
  const auto created =
      rollout("create --bundle " + at("bundle-1.json") +
              " --canary-percent 50 --wave-percent 50 --wave-interval-s 3600 --max-failed-percent 100");
  ASSERT_EQ(created.status, 0) << created.output;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(created.output, m, std::regex(R"(^rollout (\d+) started: v1 )"))) << created.output;
  const int id = std::stoi(m[1]);
  EXPECT_TRUE(has(created.output, "2 agent(s) in 2 wave(s)")) << created.output;

  // As the API has it: the request's fields reached it.
  auto r = api_rollout(id);
  EXPECT_EQ(r["phase"], "running") << r.dump(1);
  EXPECT_EQ(r["created_by"], "duty officer") << r.dump(1);
  EXPECT_EQ(
      r["policy"],
      json({{"canary_percent", 50}, {"wave_percent", 50}, {"wave_interval_s", 3600}, {"max_failed_percent", 100}}))
      << r.dump(1);

  // status ID --json is the API's answer, with a read token.
  const auto shown_json = rollout("status " + std::to_string(id) + " --json", "read.token");
  ASSERT_EQ(shown_json.status, 0) << shown_json.output;
  const auto j = json::parse(shown_json.output, nullptr, false);
  ASSERT_TRUE(j.is_object()) << shown_json.output;
  EXPECT_EQ(j["id"], id);
  EXPECT_EQ(j["version"], 1);
  EXPECT_EQ(j["agents"].size(), 2u) << shown_json.output;
  // The table: the rollout in the list, and its agents in the detail.
  const auto list = rollout("status", "read.token");
  ASSERT_EQ(list.status, 0) << list.output;
  EXPECT_TRUE(std::regex_search(list.output, std::regex(std::to_string(id) + R"( +1 +running +fleet +2: )")))
      << list.output;
  const auto detail = rollout("status " + std::to_string(id), "read.token");
  ASSERT_EQ(detail.status, 0) << detail.output;
  for (const char* line : {"phase            running", "target           fleet", "kabul/r0", "bamako/r1", "canary"})
    EXPECT_TRUE(has(detail.output, line)) << line << " not in:\n" << detail.output;

  const auto step = [&](const std::string& action, const std::string& phase) {
    const auto out = rollout(action + " " + std::to_string(id));
    EXPECT_EQ(out.status, 0) << action << ": " << out.output;
    EXPECT_TRUE(has(out.output, "rollout " + std::to_string(id) + " is " + phase)) << out.output;
    EXPECT_EQ(api_rollout(id)["phase"], phase) << action;
    const auto again =
        json::parse(rollout("status " + std::to_string(id) + " --json", "read.token").output, nullptr, false);
    EXPECT_EQ(again.value("phase", ""), phase) << action;
  };
  step("pause", "paused");
  step("resume", "running");
  step("abort", "aborted");
  EXPECT_EQ(api_rollout(id)["stop_reason"], "aborted by duty officer");
  EXPECT_TRUE(has(rollout("status", "read.token").output, "stopped: aborted by duty officer"));

  // The API's own errors, on one line: 409 (ended), 404 (no such rollout), 409 (a replay).
  const auto paused_again = rollout("pause " + std::to_string(id));
  EXPECT_EQ(paused_again.status, 1) << paused_again.output;
  EXPECT_TRUE(has(paused_again.output, "HTTP 409: rollout " + std::to_string(id) + " is aborted"))
      << paused_again.output;
  const auto missing = rollout("status 99", "read.token");
  EXPECT_EQ(missing.status, 1) << missing.output;
  EXPECT_TRUE(has(missing.output, "HTTP 404: no rollout 99")) << missing.output;
  const auto replay = rollout("create --bundle " + at("bundle-1.json"));
  EXPECT_EQ(replay.status, 1) << replay.output;
  EXPECT_TRUE(has(replay.output, "HTTP 409: bundle v1 is not newer than v1")) << replay.output;
}

TEST_F(FleetRolloutCli, ReadWrongAndMissingTokensAreRefusedNamingWhy) {
  sign("bundle-1.json", 1);
  const auto create = "create --bundle " + at("bundle-1.json");
  for (const auto& args : {create, std::string("pause 1")}) {
    const auto r = rollout(args, "read.token");
    EXPECT_EQ(r.status, 1) << args << ": " << r.output;
    EXPECT_TRUE(has(r.output, "the token has the read role only: rollouts need the operator role")) << r.output;
  }
  const auto wrong = rollout(create, "wrong.token");
  EXPECT_EQ(wrong.status, 1) << wrong.output;
  EXPECT_TRUE(has(wrong.output, "refused the token")) << wrong.output;
  const auto none = fleet("rollout status --aggregator " + api(), "-u POSTWATCH_TOKEN");
  EXPECT_EQ(none.status, 1) << none.output;
  EXPECT_TRUE(has(none.output, "needs a token")) << none.output;
  // POSTWATCH_TOKEN stands in for --token-file; a read token may look.
  const auto looked =
      fleet("rollout status --aggregator " + api(), std::string("POSTWATCH_TOKEN=") + TokensFile::kRead);
  EXPECT_EQ(looked.status, 0) << looked.output;
  EXPECT_TRUE(has(looked.output, "no rollouts")) << looked.output;
  // Nothing was started by the refused requests.
  EXPECT_EQ(http_call(aggregator->port(), feedhttp::verb::get, "/api/v1/rollouts", bearer(TokensFile::kRead))
                .json_at("rollouts")
                .size(),
            0u);
}

TEST(FleetRolloutCliTls, HttpsVerifiesTheAggregatorAgainstTheCaAndRefusesWithoutIt) {
  TempDir dir;
  MosquittoBroker broker;
  SelfSignedCert cert(dir);  // for 127.0.0.1 only
  TokensFile tokens(dir);
  std::ofstream(dir.path() / "read.token") << TokensFile::kRead << "\n";
  const unsigned short port = free_port();
  ChildProcess aggregator(
      {(binary_dir() / "aggregator" / "postwatch-aggregator").string(), "--broker", broker.uri(), "--http-port",
       std::to_string(port), "--catalogue", catalogue_path().string(), "--data-dir", (dir.path() / "data").string(),
       "--tls-cert", cert.cert.string(), "--tls-key", cert.key.string(), "--tokens-file", tokens.path.string()},
      dir.path() / "aggregator.log");
  const auto status = [&](const std::string& host, const std::string& ca) {
    return run_shell(shell_quoted(fleet_tool()) + " rollout status --aggregator https://" + host + ":" +
                     std::to_string(port) + " --token-file " + shell_quoted((dir.path() / "read.token").string()) +
                     (ca.empty() ? "" : " --ca " + shell_quoted(ca)));
  };
  // The CLI itself is the readiness probe: it succeeds once the aggregator serves.
  ASSERT_TRUE(wait_until([&] { return status("127.0.0.1", cert.cert.string()).status == 0 || !aggregator.running(); },
                         std::chrono::seconds(30)))
      << aggregator.log();
  const auto ok = status("127.0.0.1", cert.cert.string());
  ASSERT_EQ(ok.status, 0) << ok.output << aggregator.log();
  EXPECT_NE(ok.output.find("no rollouts"), std::string::npos) << ok.output;
  // Without --ca the system's CAs do not know the certificate; for "localhost" it does not name the host.
  for (const auto& [host, ca] :
       {std::pair{std::string("127.0.0.1"), std::string()}, std::pair{std::string("localhost"), cert.cert.string()}}) {
    const auto refused = status(host, ca);
    EXPECT_EQ(refused.status, 1) << host << ": " << refused.output;
    EXPECT_NE(refused.output.find("TLS handshake failed: certificate verify failed"), std::string::npos)
        << host << ": " << refused.output;
  }
}
