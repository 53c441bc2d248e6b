// The broker configuration postwatch-broker-config generates: an agent can publish
// only on its own topics and read nothing; the aggregator reads agents and writes
// the feed; wrong credentials are refused.
#include "support/aggregator_process.hpp"
#include "support/mqtt_probe.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <mutex>
#include <set>

using namespace postwatch::test;

namespace {

std::string read_secret(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::string s;
  std::getline(in, s);
  return s;
}

ProbeOptions login(const std::string& user, const std::string& password) {
  return ProbeOptions().login(user, password);
}

}  // namespace

class AccessControl : public ::testing::Test {
 protected:
  TempDir dir;
  std::filesystem::path out = dir.path() / "broker";
  std::unique_ptr<MosquittoBroker> broker;

  void SetUp() override {
    std::ofstream(dir.path() / "fleet.csv") << "# post,agent\nbamako,gw-1\nkabul,gw-1\n";
    ChildProcess gen({(binary_dir() / "tools" / "broker_config" / "postwatch-broker-config").string(), "--fleet",
                      (dir.path() / "fleet.csv").string(), "--out", out.string(), "--operator", "ops-1"},
                     dir.path() / "gen.log");
    ASSERT_EQ(gen.wait(std::chrono::seconds(30)), 0) << gen.log();
    // Mosquitto started as root runs as its own user; in production the files belong to its group.
    std::filesystem::permissions(out / "passwd", std::filesystem::perms::others_read,
                                 std::filesystem::perm_options::add);
    broker = std::make_unique<MosquittoBroker>("allow_anonymous false\npassword_file " + (out / "passwd").string() +
                                               "\nacl_file " + (out / "acl").string());
  }
  std::string secret(const std::string& user) { return read_secret(out / "secrets" / (user + ".password")); }
  void agent_publishes_only_its_own_topics();
};

TEST_F(AccessControl, AgentPublishesOnlyItsOwnTopicsAndReadsNothing) {
  try {
    agent_publishes_only_its_own_topics();
  } catch (const std::exception& e) {
    FAIL() << e.what() << "\nbroker log:\n" << broker->log();
  }
}

void AccessControl::agent_publishes_only_its_own_topics() {
  MqttProbe aggregator(broker->uri(), "agg", login("postwatch-aggregator", secret("postwatch-aggregator")));
  aggregator.subscribe("postwatch/v1/+/+/+/events");
  const std::string own = "postwatch/v1/sub-saharan-africa/bamako/gw-1/events";
  const std::string foreign = "postwatch/v1/asia/kabul/gw-1/events";
  {
    // Mosquitto 2.0 drops a denied publish and closes the offender's connection.
    MqttProbe forger(broker->uri(), "forger", login("agent.bamako.gw-1", secret("agent.bamako.gw-1")));
    try {
      forger.raw().publish(foreign, std::string("forged"), 1, false)->wait_for(std::chrono::seconds(5));
    } catch (const mqtt::exception&) {
    }
  }
  MqttProbe bamako(broker->uri(), "bamako", login("agent.bamako.gw-1", secret("agent.bamako.gw-1")));
  bamako.publish(own, "genuine");
  ASSERT_TRUE(wait_until([&] { return aggregator.got(own, "genuine"); }, std::chrono::seconds(10)));
  EXPECT_FALSE(aggregator.got(foreign, "forged"));

  // The agent cannot read the goal feed (nor anything else). Mosquitto grants a v3.1.1
  // SUBACK even where the ACL denies reading, and then delivers nothing on it.
  bamako.subscribe("postwatch/v1/feed/#");
  bamako.subscribe("postwatch/v1/+/+/+/events");
  aggregator.publish_retained("postwatch/v1/feed/goals/7", "{\"status\":\"red\"}");
  MqttProbe ops(broker->uri(), "ops", login("ops-1", secret("ops-1")));
  ops.subscribe("postwatch/v1/feed/#");
  ASSERT_TRUE(wait_until([&] { return ops.got("postwatch/v1/feed/goals/7", "{\"status\":\"red\"}"); },
                         std::chrono::seconds(10)));  // operators do read it
  // The broker wrote the live message to every permitted subscriber before acknowledging
  // the publish, so by now the agent would have it if it were allowed to read.
  EXPECT_FALSE(bamako.got("postwatch/v1/feed/goals/7", "{\"status\":\"red\"}"));

  // Its own delivery confirmations it does read; another agent's it does not. The aggregator
  // publishes the other one first, so once its own has arrived the other would have too.
  const std::string own_confirm = "postwatch/v1/sub-saharan-africa/bamako/gw-1/confirm";
  const std::string kabul_confirm = "postwatch/v1/asia/kabul/gw-1/confirm";
  bamako.subscribe(own_confirm);
  bamako.subscribe(kabul_confirm);
  aggregator.publish(kabul_confirm, "to-kabul");
  aggregator.publish(own_confirm, "to-bamako");
  ASSERT_TRUE(wait_until([&] { return bamako.got(own_confirm, "to-bamako"); }, std::chrono::seconds(10)));
  EXPECT_FALSE(bamako.got(kabul_confirm, "to-kabul"));
}

TEST_F(AccessControl, WrongOrMissingCredentialsAreRefused) {
  EXPECT_THROW(MqttProbe(broker->uri(), "x1", login("agent.bamako.gw-1", "not-the-password")), mqtt::exception);
  EXPECT_THROW(MqttProbe(broker->uri(), "x2", login("nobody", "whatever")), mqtt::exception);
  EXPECT_THROW(MqttProbe(broker->uri(), "x3"), mqtt::exception);
  auto secrets = out / "secrets" / "agent.bamako.gw-1.password";
  auto perms = std::filesystem::status(secrets).permissions();
  EXPECT_EQ(perms & (std::filesystem::perms::group_all | std::filesystem::perms::others_all),
            std::filesystem::perms::none);
}

TEST_F(AccessControl, UnknownPostInTheFleetIsRefused) {
  std::ofstream(dir.path() / "bad.csv") << "atlantis,gw-1\n";
  ChildProcess gen({(binary_dir() / "tools" / "broker_config" / "postwatch-broker-config").string(), "--fleet",
                    (dir.path() / "bad.csv").string(), "--out", (dir.path() / "bad").string()},
                   dir.path() / "bad.log");
  EXPECT_EQ(gen.wait(std::chrono::seconds(30)), 1);
  EXPECT_NE(gen.log().find("bad.csv:1: post 'atlantis' is not in the catalogue"), std::string::npos) << gen.log();
}

// The real aggregator logs in as its own user and subscribes to what it needs; a wrong
// password keeps it out with an error that says what to check.
TEST_F(AccessControl, TheAggregatorLogsInWithItsOwnUser) {
  auto password = out / "secrets" / "postwatch-aggregator.password";
  AggregatorProcess agg(*broker, dir,
                        {"--broker-username", "postwatch-aggregator", "--broker-password-file", password.string()});
  EXPECT_EQ(http_get(agg.port(), "/readyz").status, 200);

  std::ofstream(dir.path() / "wrong.password") << "not-the-password\n";
  std::filesystem::permissions(dir.path() / "wrong.password", std::filesystem::perms::owner_read);
  TempDir other;
  // Refused, the aggregator keeps trying (a daemon waits for its broker); what it logs is checked.
  const auto refused = AggregatorProcess::log_until(
      broker->uri(), other,
      {"--broker-username", "postwatch-aggregator", "--broker-password-file", (dir.path() / "wrong.password").string()},
      "refused the login as 'postwatch-aggregator'");
  EXPECT_NE(refused.find("refused the login as 'postwatch-aggregator'"), std::string::npos) << refused;
  EXPECT_EQ(refused.find("not-the-password"), std::string::npos) << "the log shows the password";
  EXPECT_EQ(refused.find("subscribed; ready"), std::string::npos) << "an aggregator with a wrong password became ready";
  ChildProcess exposed({(binary_dir() / "aggregator" / "postwatch-aggregator").string(), "--broker", broker->uri(),
                        "--broker-password-file", (out / "passwd").string()},
                       other.path() / "exposed.log");
  EXPECT_EQ(exposed.wait(std::chrono::seconds(10)), 2);
  EXPECT_NE(exposed.log().find("chmod 600"), std::string::npos) << exposed.log();
}
