// postwatch-fleet command against the real aggregator (--tokens-file), Mosquitto and two real
// agents with a fleet section and a script probe, as in fleet_command_test.cpp (docs/fleet.md,
// "Remote commands"): send waits for the agent's answer and prints it (report-status: the
// agent's status), status lists and shows the command as the API has it; an agent's failure,
// an expired and a still pending command exit 1 saying so; a read token and an unknown agent are
// refused with one line naming why, and nothing is kept for them.
#include "integration/fleet_command_fixture.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <fstream>
#include <regex>

using namespace postwatch;
using namespace postwatch::test;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string fleet_tool() { return (binary_dir() / "tools" / "fleet" / "postwatch-fleet").string(); }

bool has(const std::string& output, const std::string& text) { return output.find(text) != std::string::npos; }

class FleetCommandCli : public FleetCommandFleet {
 protected:
  void SetUp() override {
    FleetCommandFleet::SetUp();
    for (const auto& [name, token] :
         {std::pair{"operator.token", TokensFile::kOperator}, std::pair{"read.token", TokensFile::kRead}})
      std::ofstream(dir.path() / name) << token << "\n";
    ASSERT_TRUE(wait_until([&] { return online(0) && online(1); }, std::chrono::seconds(30))) << logs();
  }
  std::string at(const std::string& name) const { return shell_quoted((dir.path() / name).string()); }
  std::string api() const { return "http://127.0.0.1:" + std::to_string(aggregator->port()); }
  // postwatch-fleet command ARGS against the test's aggregator with the token in `token_file`.
  CommandResult command(const std::string& args, const std::string& token_file = "operator.token") const {
    return run_shell(shell_quoted(fleet_tool()) + " command " + args + " --aggregator " + api() + " --token-file " +
                     at(token_file));
  }
  // The id send printed: "command c3 (report-status) for kabul/c0 is pending; …".
  static std::string sent_id(const std::string& output) {
    std::smatch m;
    return std::regex_search(output, m, std::regex(R"(^command (c\d+) \()")) ? m[1].str() : std::string();
  }
};

}  // namespace

TEST_F(FleetCommandCli, ReportStatusWaitsForTheAgentsStatusAndStatusShowsItDone) {
  const auto sent = command("send --agent kabul/c0 report-status --wait-s 20");
  ASSERT_EQ(sent.status, 0) << sent.output << logs();
  const auto id = sent_id(sent.output);
  ASSERT_FALSE(id.empty()) << sent.output;
  EXPECT_TRUE(has(sent.output, "command " + id + " (report-status) for kabul/c0 is pending")) << sent.output;
  EXPECT_TRUE(has(sent.output, "command " + id + " (report-status) for kabul/c0 done at ")) << sent.output;
  // The agent's status, pretty-printed: one member a line.
  EXPECT_TRUE(has(sent.output, "\n  \"agent_id\": \"c0\",\n")) << sent.output;
  EXPECT_TRUE(has(sent.output, "\"spool_events\"")) << sent.output;

  // status ID --json is the API's answer, with a read token.
  const auto shown = command("status " + id + " --json", "read.token");
  ASSERT_EQ(shown.status, 0) << shown.output;
  const auto j = json::parse(shown.output, nullptr, false);
  ASSERT_TRUE(j.is_object()) << shown.output;
  EXPECT_EQ(j["id"], id);
  EXPECT_EQ(j["state"], "done") << shown.output;
  EXPECT_EQ(j["result"]["agent_id"], "c0") << shown.output;
  EXPECT_EQ(j["by"], "duty officer") << shown.output;
  // The list has it; the detail too.
  const auto list = command("status", "read.token");
  ASSERT_EQ(list.status, 0) << list.output;
  EXPECT_TRUE(has(list.output, "ANSWERED/EXPIRES")) << list.output;
  EXPECT_TRUE(std::regex_search(list.output, std::regex(id + R"( +report-status +kabul/c0 +done +20\d\d-)")))
      << list.output;
  const auto detail = command("status " + id, "read.token");
  ASSERT_EQ(detail.status, 0) << detail.output;
  for (const char* line : {"state            done", "agent            kabul/c0", "by duty officer", "\"agent_id\""})
    EXPECT_TRUE(has(detail.output, line)) << line << " not in:\n" << detail.output;

  // Another command's result goes on the outcome's line; without --wait-s send does not wait.
  const auto flushed = command("send --agent kabul/c1 flush --ttl-s 60 --wait-s 20");
  EXPECT_EQ(flushed.status, 0) << flushed.output;
  EXPECT_TRUE(std::regex_search(flushed.output, std::regex(R"(\(flush\) for kabul/c1 done at \S+: \{"spool_events")")))
      << flushed.output;
  const auto resend = command("send --agent kabul/c0 resend-from --seq 1000000");
  EXPECT_EQ(resend.status, 0) << resend.output;
  const auto resend_id = sent_id(resend.output);
  EXPECT_TRUE(has(resend.output, "(resend-from 1000000) for kabul/c0 is pending")) << resend.output;
  const auto kept = get("/api/v1/commands/" + resend_id);
  EXPECT_EQ(kept.value("seq", 0), 1000000) << kept.dump();
  auto listed = get("/api/v1/commands");
  ASSERT_TRUE(listed["commands"].is_array()) << listed.dump();
  EXPECT_EQ(listed["commands"].size(), 3u);
}

TEST_F(FleetCommandCli, TheAgentsFailureAnExpiredAndAStillPendingCommandExitOne) {
  const auto failed = command("send --agent kabul/c1 run-probe --probe terrorism_threat_level --wait-s 20");
  EXPECT_EQ(failed.status, 1) << failed.output << logs();
  EXPECT_TRUE(has(failed.output, "(run-probe terrorism_threat_level) for kabul/c1 failed: ")) << failed.output;
  EXPECT_TRUE(has(failed.output, "no script probe for indicator 'terrorism_threat_level'")) << failed.output;
  EXPECT_EQ(get("/api/v1/commands/" + sent_id(failed.output))["state"], "failed");
  // The list shows the agent's error.
  const auto list = command("status", "read.token");
  EXPECT_TRUE(has(list.output, "no script probe for indicator 'terrorism_threat_level'")) << list.output;

  // Agent 1 stops: a command for it waits.
  agents[1]->signal(SIGTERM);
  const int stopped = agents[1]->wait(std::chrono::seconds(15));
  ASSERT_TRUE(stopped == 0 || stopped == 1) << stopped << "\n" << logs();
  ASSERT_TRUE(wait_until([&] { return !online(1); }, std::chrono::seconds(15))) << logs();
  const auto pending = command("send --agent kabul/c1 report-status --ttl-s 600 --wait-s 1");
  EXPECT_EQ(pending.status, 1) << pending.output;
  EXPECT_TRUE(has(pending.output, "is still pending after 1 s: the aggregator keeps it for the agent until its TTL"))
      << pending.output;
  EXPECT_EQ(get("/api/v1/commands/" + sent_id(pending.output))["state"], "pending");
  const auto expired = command("send --agent kabul/c1 flush --ttl-s 1 --wait-s 20");
  EXPECT_EQ(expired.status, 1) << expired.output << logs();
  EXPECT_TRUE(has(expired.output, "(flush) for kabul/c1 expired unanswered at ")) << expired.output;
  EXPECT_EQ(get("/api/v1/commands/" + sent_id(expired.output))["state"], "expired");
}

TEST_F(FleetCommandCli, AReadTokenAndAnUnknownAgentAreRefusedNamingWhy) {
  const auto read = command("send --agent kabul/c0 report-status --wait-s 5", "read.token");
  EXPECT_EQ(read.status, 1) << read.output;
  EXPECT_TRUE(has(read.output, "the token has the read role only: commands need the operator role")) << read.output;
  const auto unknown = command("send --agent kabul/nobody flush");
  EXPECT_EQ(unknown.status, 1) << unknown.output;
  EXPECT_TRUE(has(unknown.output, "HTTP 404: no agent 'nobody' at post 'kabul'")) << unknown.output;
  EXPECT_EQ(std::count(unknown.output.begin(), unknown.output.end(), '\n'), 1) << "one line: " << unknown.output;
  const auto no_post = command("send --agent atlantis/c0 flush");
  EXPECT_EQ(no_post.status, 1) << no_post.output;
  EXPECT_TRUE(has(no_post.output, "HTTP 404: no post 'atlantis'")) << no_post.output;
  const auto missing = command("status c99", "read.token");
  EXPECT_EQ(missing.status, 1) << missing.output;
  EXPECT_TRUE(has(missing.output, "HTTP 404: no command 'c99'")) << missing.output;
  // Usage errors against the running aggregator: exit 2, nothing sent.
  for (const char* args : {"send --agent kabul/c0 reboot", "send --agent kabul/c0 resend-from",
                           "send --agent kabul/c0 run-probe", "send --agent kabul flush"}) {
    const auto r = command(args);
    EXPECT_EQ(r.status, 2) << args << ": " << r.output;
  }
  // Nothing was kept for any of them.
  auto listed = get("/api/v1/commands");
  ASSERT_TRUE(listed["commands"].is_array()) << listed.dump();
  EXPECT_EQ(listed["commands"].size(), 0u);
  const auto none = command("status", "read.token");
  EXPECT_EQ(none.status, 0) << none.output;
  EXPECT_EQ(none.output, "no commands\n");
}
