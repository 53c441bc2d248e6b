// postwatch-fleet as it is run (docs/fleet.md): keygen writes an owner-only key and never
// replaces one, sign and show round-trip a bundle, show refuses a bundle of another fleet key,
// and sign refuses a catalogue that does not load.
#include "support/test_support.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>

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
  CommandResult fleet(const std::string& args) const { return run_shell(shell_quoted(fleet_tool()) + " " + args); }
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
