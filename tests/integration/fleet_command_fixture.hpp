// The setup both remote-command tests share (docs/fleet.md, "Remote commands"): Mosquitto, the
// real aggregator with --tokens-file, and two real agents at kabul (c0, c1) that take bundles and
// commands and have a script probe for agent_cpu_percent.
#pragma once

#include "postwatch/signing.hpp"
#include "support/agent_config_file.hpp"
#include "support/aggregator_process.hpp"
#include "support/feed_http.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <fstream>

namespace postwatch::test {

class FleetCommandFleet : public ::testing::Test {
 protected:
  TempDir dir;
  MosquittoBroker broker;
  TokensFile tokens{dir};
  std::filesystem::path pub = dir.path() / "fleet.pub";
  std::unique_ptr<AggregatorProcess> aggregator;
  std::vector<std::unique_ptr<ChildProcess>> agents;
  static constexpr int kAgents = 2;

  void SetUp() override {
    std::ofstream(pub) << to_hex(SigningKey::from_seed({12}).public_key()) << "\n";
    aggregator = std::make_unique<AggregatorProcess>(broker, dir,
                                                     std::vector<std::string>{"--tokens-file", tokens.path.string()});
    for (int i = 0; i < kAgents; ++i) {
      const auto home = dir.path() / ("agent-" + std::to_string(i));
      std::filesystem::create_directories(home);
      AgentConfigFile(broker.uri(), "c" + std::to_string(i), "kabul", home / "spool")
          .set("heartbeat_interval_s", 1)
          .set("scripts", {{{"indicator", "agent_cpu_percent"}, {"command", {"/bin/echo", "7"}}, {"interval_s", 3600}}})
          .set("fleet", {{"key_file", pub.string()}, {"allow_scripts", true}})
          .write(home / "agent.json");
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
  void stop(int i) {
    agents[i]->signal(SIGTERM);
    // 0, or 1 when its script probe's last reading was not confirmed yet (it waits in the spool).
    const int status = agents[i]->wait(std::chrono::seconds(15));
    ASSERT_TRUE(status == 0 || status == 1) << status << "\n" << logs();
  }
  nlohmann::json get(const std::string& target) {
    auto r = http_call(aggregator->port(), feedhttp::verb::get, target, bearer(TokensFile::kRead));
    return r.status == 200 ? nlohmann::json::parse(r.body, nullptr, false) : nlohmann::json();
  }
  bool online(int i) {
    auto a = get("/api/v1/agents/kabul/c" + std::to_string(i));
    return a.is_object() && a.value("online", false);
  }
  std::string agent_log(int i) {
    std::ifstream in(dir.path() / ("agent-" + std::to_string(i)) / "agent.log");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  std::string logs() {
    std::string out = "--- aggregator\n" + aggregator->process().log();
    for (int i = 0; i < kAgents; ++i) out += "--- agent " + std::to_string(i) + "\n" + agent_log(i);
    return out;
  }
};

}  // namespace postwatch::test
