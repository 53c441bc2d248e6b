// Remote commands without a broker (docs/fleet.md, "Remote commands"): the wire messages, and
// the desk that keeps each agent's pending commands on its retained topic until they are
// answered or their time-to-live runs out.
#include "rollouts/command_desk.hpp"
#include "postwatch/fleet_command.hpp"
#include "support/test_support.hpp"

#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <gtest/gtest.h>

#include <map>

using namespace postwatch;
using namespace postwatch::aggregator;
using namespace postwatch::test;

namespace {

std::shared_ptr<spdlog::logger> quiet() {
  return std::make_shared<spdlog::logger>("t", std::make_shared<spdlog::sinks::null_sink_mt>());
}

struct Retained {
  std::map<std::string, std::string> topics;
  CommandDesk::Publish publish = [this](const std::string& t, const std::string& p) { topics[t] = p; };
  std::vector<FleetCommand> listed(const std::string& post, const std::string& agent) {
    const auto& text = topics[command_topic(post, agent)];
    if (text.empty()) return {};
    std::string error;
    auto c = decode_fleet_commands(text, error);
    EXPECT_TRUE(c.has_value()) << error;
    return c.value_or(std::vector<FleetCommand>{});
  }
};

FleetCommand named(const std::string& name) {
  FleetCommand c;
  c.name = name;
  return c;
}

}  // namespace

TEST(FleetCommandWire, ListsAndResultsRoundTripAndBadOnesAreRefusedWhole) {
  FleetCommand a{"c1", "resend-from", 42, "", 1000}, b{"c2", "run-probe", 0, "agent_cpu_percent", 2000};
  std::string error;
  auto back = decode_fleet_commands(encode_fleet_commands({a, b}), error);
  ASSERT_TRUE(back) << error;
  ASSERT_EQ(back->size(), 2u);
  EXPECT_EQ((*back)[0].seq, 42u);
  EXPECT_EQ((*back)[1].probe, "agent_cpu_percent");
  EXPECT_EQ((*back)[1].expires_at_ms, 2000);
  EXPECT_FALSE(decode_fleet_commands("{}", error));
  EXPECT_FALSE(
      decode_fleet_commands(R"({"format":"postwatch-commands/1","commands":[{"id":"c1","command":"reboot"}]})", error));
  EXPECT_NE(error.find("unknown command 'reboot'"), std::string::npos) << error;
  EXPECT_FALSE(decode_fleet_commands(
      R"({"format":"postwatch-commands/1","commands":[{"id":"c1","command":"resend-from"}]})", error));
  EXPECT_FALSE(decode_fleet_commands(std::string(70 * 1024, ' '), error));
  EXPECT_EQ(error, "over 64 KiB");

  FleetCommandResult r{"c1", "report-status", true, "", R"({"spool_events":3})"};
  auto rb = decode_fleet_command_result(encode_fleet_command_result(r), error);
  ASSERT_TRUE(rb) << error;
  EXPECT_TRUE(rb->ok);
  EXPECT_EQ(nlohmann::json::parse(rb->result_json)["spool_events"], 3);
  EXPECT_FALSE(decode_fleet_command_result(R"({"id":"c1"})", error));
  EXPECT_FALSE(decode_fleet_command_result(R"({"id":"c 1","command":"flush","ok":true})", error));

  std::string post, agent;
  EXPECT_TRUE(parse_command_result_topic(command_result_topic("kabul", "gw-1"), post, agent));
  EXPECT_EQ(post + "/" + agent, "kabul/gw-1");
  EXPECT_FALSE(parse_command_result_topic(command_topic("kabul", "gw-1"), post, agent));
  EXPECT_FALSE(parse_command_result_topic("postwatch/v1/fleet/command-result/kabul/gw-1/x", post, agent));
}

TEST(CommandDesk, PendingCommandsStayRetainedUntilAnsweredOrExpiredAndSurviveARestart) {
  TempDir dir;
  Retained broker;
  const auto file = dir.path() / "commands.json";
  std::string first, second;
  {
    CommandDesk desk(file, quiet());
    first = desk.send("kabul", "a1", named("report-status"), 60000, "ops", 0, broker.publish).command.id;
    second = desk.send("kabul", "a1", named("flush"), 2000, "ops", 10, broker.publish).command.id;
    EXPECT_NE(first, second);
    EXPECT_EQ(broker.listed("kabul", "a1").size(), 2u);
    try {
      desk.send("kabul", "a1", named("flush"), 0, "ops", 0, broker.publish);
      FAIL();
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("ttl_s"), std::string::npos);
    }
    EXPECT_THROW(desk.send("kabul", "a1", named("reboot"), 1000, "ops", 0, broker.publish), std::invalid_argument);
    // An answer from another agent does not count.
    EXPECT_FALSE(desk.on_result("kabul", "a2", {first, "report-status", true, "", "{}"}, 100, broker.publish));
    EXPECT_TRUE(desk.on_result("kabul", "a1", {first, "report-status", true, "", R"({"x":1})"}, 100, broker.publish));
    EXPECT_FALSE(desk.on_result("kabul", "a1", {first, "report-status", true, "", "{}"}, 101, broker.publish));
    ASSERT_EQ(broker.listed("kabul", "a1").size(), 1u);
    EXPECT_EQ(broker.listed("kabul", "a1")[0].id, second);
  }
  CommandDesk desk(file, quiet());
  EXPECT_EQ(desk.find(first)->state, SentCommand::State::Done);
  EXPECT_EQ(desk.find(first)->to_json()["result"]["x"], 1);
  EXPECT_EQ(desk.find(second)->state, SentCommand::State::Pending);
  desk.tick(1000, broker.publish);
  EXPECT_EQ(desk.find(second)->state, SentCommand::State::Pending);
  desk.tick(2010, broker.publish);  // its TTL ran out: withdrawn, the retained message cleared
  EXPECT_EQ(desk.find(second)->state, SentCommand::State::Expired);
  EXPECT_EQ(broker.topics[command_topic("kabul", "a1")], "");
  EXPECT_FALSE(desk.on_result("kabul", "a1", {second, "flush", true, "", "{}"}, 2020, broker.publish));
  // Ids go on from the highest one kept.
  auto third = desk.send("kabul", "a1", named("rebirth"), 1000, "ops", 3000, broker.publish).command.id;
  EXPECT_NE(third, first);
  EXPECT_NE(third, second);
  EXPECT_EQ(desk.newest(10).front()->command.id, third);
  EXPECT_EQ(desk.count(SentCommand::State::Expired), 1u);
}
