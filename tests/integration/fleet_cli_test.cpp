// postwatch-fleet as it is run (docs/fleet.md): keygen writes an owner-only key and never
// replaces one, sign and show round-trip a bundle, show refuses a bundle of another fleet key,
// and sign refuses a catalogue that does not load. rollout and command without an aggregator:
// one not running, and usage errors (the rest is in fleet_rollout_cli_test.cpp and
// fleet_command_cli_test.cpp, with one running).
#include "support/test_support.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <sstream>

namespace fs = std::filesystem;
using namespace postwatch::test;

namespace {

std::string fleet_tool() { return (binary_dir() / "tools" / "fleet" / "postwatch-fleet").string(); }

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class FleetCli : public ::testing::Test {
 protected:
  // `env`: VAR=value ... for this run only.
  CommandResult fleet(const std::string& args, const std::string& env = "") const {
    return run_shell((env.empty() ? "" : "env " + env + " ") + shell_quoted(fleet_tool()) + " " + args);
  }
  fs::path at(const std::string& name) const { return dir_.path() / name; }
  std::string path(const std::string& name) const { return shell_quoted(at(name).string()); }
  void keygen(const std::string& dir) const {
    const auto r = fleet("keygen --out " + path(dir));
    ASSERT_EQ(r.status, 0) << r.output;
  }
  void write(const std::string& name, const std::string& text) const { std::ofstream(at(name)) << text; }

 private:
  TempDir dir_;
};

}  // namespace

TEST_F(FleetCli, KeygenWritesAnOwnerOnlyKeyAndThePublicHalfAndNeverReplacesThem) {
  const auto r = fleet("keygen --out " + path("keys"));
  ASSERT_EQ(r.status, 0) << r.output;
  struct stat st {};
  ASSERT_EQ(::stat(at("keys/fleet.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const auto pub = read_file(at("keys/fleet.pub"));
  ASSERT_EQ(pub.rfind("# postwatch fleet key ", 0), 0u) << pub;
  const auto key_id = pub.substr(22, 16);
  EXPECT_NE(r.output.find(key_id), std::string::npos) << "the output names the key id: " << r.output;
  EXPECT_NE(r.output.find(at("keys/fleet.key").string()), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(at("keys/fleet.pub").string()), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("offline"), std::string::npos) << r.output;

  const auto key = read_file(at("keys/fleet.key"));
  const auto again = fleet("keygen --out " + path("keys"));
  EXPECT_EQ(again.status, 1) << again.output;
  EXPECT_NE(again.output.find("exists"), std::string::npos) << again.output;
  EXPECT_EQ(read_file(at("keys/fleet.key")), key) << "the key was replaced";
  EXPECT_EQ(read_file(at("keys/fleet.pub")), pub);
}

TEST_F(FleetCli, ASignedBundleShowsItsVersionTargetAndContents) {
  keygen("keys");
  write("overlay.json", R"({"heartbeat_interval_s": 30})");
  const auto signed_ = fleet("sign --key " + path("keys/fleet.key") + " --version 7 --target post:bamako --config " +
                             path("overlay.json") + " --catalogue " + shell_quoted(catalogue_path().string()) +
                             " --note 'summit week' --out " + path("bundle.json"));
  ASSERT_EQ(signed_.status, 0) << signed_.output;
  EXPECT_NE(signed_.output.find("postwatch/v1/fleet/bundle/post/bamako"), std::string::npos) << signed_.output;

  const auto shown = fleet("show " + path("bundle.json") + " --keys " + path("keys/fleet.pub"));
  ASSERT_EQ(shown.status, 0) << shown.output;
  for (const char* line :
       {"version          7", "target           post bamako", "topic            postwatch/v1/fleet/bundle/post/bamako",
        "health deadline  120 s", "note             summit week", "config overlay   {\"heartbeat_interval_s\":30}",
        " indicators", "catalogue_version"})
    EXPECT_NE(shown.output.find(line), std::string::npos) << line << " not in:\n" << shown.output;
}

TEST_F(FleetCli, ShowRefusesABundleSignedByAnotherFleetKey) {
  keygen("keys");
  keygen("other");
  write("overlay.json", R"({"heartbeat_interval_s": 30})");
  const auto signed_ = fleet("sign --key " + path("keys/fleet.key") + " --version 1 --target fleet --config " +
                             path("overlay.json") + " --out " + path("bundle.json"));
  ASSERT_EQ(signed_.status, 0) << signed_.output;
  const auto shown = fleet("show " + path("bundle.json") + " --keys " + path("other/fleet.pub"));
  EXPECT_EQ(shown.status, 1) << shown.output;
  EXPECT_NE(shown.output.find("refused (unknown_key): "), std::string::npos) << shown.output;
}

TEST_F(FleetCli, SignRefusesACatalogueThatDoesNotLoadNamingTheProblem) {
  keygen("keys");
  write("broken.json", R"({"catalogue_version": 2, "goals": 3})");
  const auto r = fleet("sign --key " + path("keys/fleet.key") + " --version 2 --target fleet --catalogue " +
                       path("broken.json") + " --out " + path("bundle.json"));
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find(at("broken.json").string()), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("'goals' must be an array"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(at("bundle.json"))) << "nothing is written";
}

TEST_F(FleetCli, UsageErrorsExitTwoAndHelpGivesDefaultsAsWritten) {
  keygen("keys");
  write("overlay.json", R"({"heartbeat_interval_s": 30})");
  const auto sign = "sign --key " + path("keys/fleet.key") + " --config " + path("overlay.json");
  for (const auto& args :
       {sign + " --version 1 --target continent:africa", sign + " --version 0 --target fleet", sign + " --target fleet",
        sign + " --version 1 --target fleet --health-deadline-s 5", std::string("frobnicate")}) {
    const auto r = fleet(args);
    EXPECT_EQ(r.status, 2) << args << "\n" << r.output;
  }
  const auto help = fleet("sign --help");
  EXPECT_EQ(help.status, 0) << help.output;
  EXPECT_NE(help.output.find("--health-deadline-s N (=120)"), std::string::npos) << help.output;
  const auto all = fleet("--help");
  EXPECT_EQ(all.status, 0) << all.output;
  for (const char* option : {"--out", "--key", "--version", "--target", "--config", "--catalogue", "--note", "--keys"})
    EXPECT_NE(all.output.find(option), std::string::npos) << option;
}

TEST_F(FleetCli, RolloutAgainstAnAggregatorThatIsNotRunningSaysItCannotReachItAndExitsOne) {
  // A free port: nothing listens there, so the connection is refused at once.
  const auto url = "http://127.0.0.1:" + std::to_string(free_port());
  for (const auto& args : {std::string("rollout status --aggregator ") + url, "rollout pause 1 --aggregator " + url}) {
    const auto r = fleet(args);
    EXPECT_EQ(r.status, 1) << args << "\n" << r.output;
    EXPECT_NE(r.output.find("cannot reach the aggregator at " + url + ": "), std::string::npos) << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << "one line: " << r.output;
  }
  // POSTWATCH_AGGREGATOR stands in for --aggregator.
  const auto r = fleet("rollout status 3", "POSTWATCH_AGGREGATOR=" + url);
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("cannot reach the aggregator at " + url), std::string::npos) << r.output;
}

TEST_F(FleetCli, RolloutUsageErrorsExitTwo) {
  keygen("keys");
  write("overlay.json", R"({"heartbeat_interval_s": 30})");
  ASSERT_EQ(fleet("sign --key " + path("keys/fleet.key") + " --version 1 --target fleet --config " +
                  path("overlay.json") + " --out " + path("bundle.json"))
                .status,
            0);
  // Nothing is listening: a usage error is found before any connection.
  const auto at = " --aggregator http://127.0.0.1:" + std::to_string(free_port());
  const auto create = "rollout create --bundle " + path("bundle.json") + at;
  for (const auto& args : {"rollout create" + at,                                   // no --bundle
                           "rollout frobnicate" + at,                               // no such subcommand
                           std::string("rollout"),                                  // no subcommand
                           "rollout pause" + at,                                    // no ID
                           "rollout abort first" + at,                              // not an ID
                           create + " --canary-percent 0",                          // out of range
                           create + " --wave-interval-s 604801",                    // out of range
                           create + " --no-such-option 1",                          // unknown option
                           "rollout create --bundle " + path("overlay.json") + at,  // not a signed bundle
                           "rollout create --bundle " + path("bundle.json") + " --aggregator ftp://127.0.0.1:8080",
                           create + " --ca " + path("overlay.json")}) {  // --ca on http
    const auto r = fleet(args);
    EXPECT_EQ(r.status, 2) << args << "\n" << r.output;
    EXPECT_EQ(r.output.find("cannot reach"), std::string::npos) << args << "\n" << r.output;
  }
  const auto help = fleet("rollout create --help");
  EXPECT_EQ(help.status, 0) << help.output;
  for (const char* option : {"--bundle", "--canary-percent", "--wave-percent", "--wave-interval-s",
                             "--max-failed-percent", "--aggregator", "--token-file", "--ca"})
    EXPECT_NE(help.output.find(option), std::string::npos) << option << " not in:\n" << help.output;
  for (const char* sub : {"status", "pause", "resume", "abort"})
    EXPECT_EQ(fleet(std::string("rollout ") + sub + " --help").status, 0) << sub;
}

TEST_F(FleetCli, CommandUsageErrorsExitTwoWithoutContactingTheAggregator) {
  // Nothing is listening: a usage error is found before any connection, and a valid command is
  // not (it gets "cannot reach", exit 1).
  const auto at = " --aggregator http://127.0.0.1:" + std::to_string(free_port());
  const std::string send = "command send --agent kabul/gw-1";
  for (const auto& args : {send + " reboot" + at,                                 // unknown COMMAND
                           send + at,                                             // no COMMAND
                           send + " resend-from" + at,                            // no --seq
                           send + " resend-from --seq 0" + at,                    // seq from 1
                           send + " run-probe" + at,                              // no --probe
                           send + " flush --seq 3" + at,                          // --seq for resend-from only
                           send + " flush --probe agent_cpu_percent" + at,        // --probe for run-probe only
                           send + " flush --ttl-s 0" + at,                        // out of range
                           send + " flush --ttl-s 604801" + at,                   // out of range
                           send + " flush --wait-s soon" + at,                    // not a number
                           "command send --agent kabul flush" + at,               // not POST/AGENT
                           "command send --agent /gw-1 flush" + at,               // no post
                           "command send --agent kabul/gw-1/x flush" + at,        // two slashes
                           "command send flush" + at,                             // no --agent
                           "command status 12" + at,                              // not an ID
                           "command frobnicate" + at,                             // no such subcommand
                           std::string("command"),                                // no subcommand
                           send + " flush --aggregator ftp://127.0.0.1:8080"}) {  // not http(s)
    const auto r = fleet(args);
    EXPECT_EQ(r.status, 2) << args << "\n" << r.output;
    EXPECT_EQ(r.output.find("cannot reach"), std::string::npos) << args << "\n" << r.output;
  }
  const auto reached = fleet(send + " resend-from --seq 5 --ttl-s 60 --wait-s 1" + at);
  EXPECT_EQ(reached.status, 1) << reached.output;
  EXPECT_NE(reached.output.find("cannot reach the aggregator"), std::string::npos) << reached.output;
  const auto help = fleet("command send --help");
  EXPECT_EQ(help.status, 0) << help.output;
  for (const char* option :
       {"--agent", "--seq", "--probe", "--ttl-s", "--wait-s", "--aggregator", "--token-file", "--ca"})
    EXPECT_NE(help.output.find(option), std::string::npos) << option << " not in:\n" << help.output;
  EXPECT_EQ(fleet("command status --help").status, 0);
  const auto all = fleet("--help");
  EXPECT_NE(all.output.find("postwatch-fleet command send --agent POST/AGENT COMMAND"), std::string::npos)
      << all.output;
}
