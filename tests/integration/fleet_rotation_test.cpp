// The aggregator's key rotated under a fleet of the size users run (docs/security.md, "The
// aggregator's key"): hundreds of agents enrolled by postwatch-sim --enrol, the agent library's
// own enrolment, with a real Mosquitto and the real aggregator.
#include "trust_test_support.hpp"

#include <gtest/gtest.h>

#include <iostream>

using namespace postwatch;
using namespace postwatch::test;

namespace {

class FleetRotation : public Trust {
 protected:
  HttpReply post(const std::string& target) {
    return http_call(aggregator->port(), feedhttp::verb::post, target, bearer(TokensFile::kOperator), "");
  }
  json key_status() { return api("/api/v1/aggregator-key"); }
};

}  // namespace

// The rotation of aggregator_key_test.cpp across a fleet as users run one: 284 agents at 142 posts, enrolled by
// postwatch-sim --enrol (the agent library's own enrolment), each sending an event a second.
// The switch waits until every one of them reports the next key; afterwards none trusts the
// retired key, nothing is refused and every event is confirmed. Label "scale": the TSan stage
// leaves it out (284 agents, about 850 threads, take minutes there); release and ASan run it.
TEST_F(FleetRotation, TheAggregatorsKeyRotatesAcrossHundredsOfEnrolledAgentsAndLosesNothing) {
  constexpr int kAgents = 284;
  const auto token_file = dir.path() / "operator.token";
  std::ofstream(token_file) << TokensFile::kOperator << "\n";
  fs::permissions(token_file, fs::perms::owner_read | fs::perms::owner_write);
  ChildProcess sim({(binary_dir() / "tools" / "simulator" / "postwatch-sim").string(),
                    "--broker",
                    broker.uri(),
                    "--catalogue",
                    catalogue_path().string(),
                    "--posts",
                    "142",
                    "--agents-per-post",
                    "2",
                    "--rate",
                    "1",
                    "--duration",
                    "25",
                    "--drain",
                    "30",
                    "--quiet",
                    "--enrol",
                    "http://127.0.0.1:" + std::to_string(aggregator->port()),
                    "--enrol-token-file",
                    token_file.string()},
                   dir.path() / "sim.log");
  ASSERT_TRUE(wait_until([&] { return sim.log().find("all 284 agents connected") != std::string::npos; },
                         std::chrono::seconds(120)))
      << sim.log();
  EXPECT_EQ(key_status()["agents"]["enrolled"], kAgents);
  if (auto at = sim.log().find("enrolled 284 agents"); at != std::string::npos)
    std::cout << sim.log().substr(at, sim.log().find('\n', at) - at) << "\n";

  auto r = post("/api/v1/aggregator-key/next");
  ASSERT_EQ(r.status, 201) << r.body;
  const auto prepared = std::chrono::steady_clock::now();
  // Agents with events to send learn the key from their next confirmation; the heartbeat that
  // follows reports it.
  ASSERT_TRUE(wait_until([&] { return key_status()["ready_to_switch"] == true; }, std::chrono::seconds(30)))
      << key_status().dump();
  const auto reported_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - prepared).count();
  r = post("/api/v1/aggregator-key/switch");
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_TRUE(
      wait_until([&] { return key_status()["agents"]["still_trusting_retired"] == 0; }, std::chrono::seconds(30)))
      << key_status().dump();
  std::cout << "every agent reported the next key " << reported_s << " s after it was prepared\n";

  ASSERT_EQ(sim.wait(std::chrono::seconds(120)), 0) << sim.log();
  const auto log = sim.log();
  EXPECT_EQ(log.find("never confirmed"), std::string::npos) << log;
  auto done = log.find("done after");
  ASSERT_NE(done, std::string::npos) << log;
  auto accepted_at = log.find("events accepted ", done);
  const auto accepted = std::stol(log.substr(accepted_at + 16));
  const auto confirmed_at = log.find("confirmed ", accepted_at);
  EXPECT_EQ(std::stol(log.substr(confirmed_at + 10)), accepted) << log.substr(done);
  EXPECT_NE(log.find("rejected 0", done), std::string::npos) << log.substr(done);
  EXPECT_GT(accepted, kAgents * 15);

  auto s = stats();
  EXPECT_EQ(s["events_accepted"], accepted) << s.dump();
  EXPECT_EQ(s["batches_signed"], s["batches_accepted"]) << s.dump();
  for (const auto& [reason, n] : s["batches_refused_signature"].items()) EXPECT_EQ(n, 0) << reason;
  for (const auto& [reason, n] : s["agent_states_refused_signature"].items()) EXPECT_EQ(n, 0) << reason;
  EXPECT_EQ(key_status()["switches"], 1);
}

// A token that may not issue enrolment tokens (the read role) stops the simulator before any
// agent starts, with the aggregator's answer.
TEST_F(FleetRotation, AnEnrolmentWithoutAnOperatorTokenStopsTheSimulatorWithTheAggregatorsAnswer) {
  const auto token_file = dir.path() / "read.token";
  std::ofstream(token_file) << TokensFile::kRead << "\n";
  fs::permissions(token_file, fs::perms::owner_read | fs::perms::owner_write);
  ChildProcess sim(
      {(binary_dir() / "tools" / "simulator" / "postwatch-sim").string(), "--broker", broker.uri(), "--catalogue",
       catalogue_path().string(), "--posts", "3", "--duration", "5", "--quiet", "--enrol",
       "http://127.0.0.1:" + std::to_string(aggregator->port()), "--enrol-token-file", token_file.string()},
      dir.path() / "sim.log");
  EXPECT_EQ(sim.wait(std::chrono::seconds(30)), 1) << sim.log();
  EXPECT_NE(sim.log().find("the aggregator refused a token (HTTP 403"), std::string::npos) << sim.log();
  EXPECT_EQ(key_status()["agents"]["enrolled"], 0);
  EXPECT_EQ(stats()["events_accepted"], 0);
}
