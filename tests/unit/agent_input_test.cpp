#include "postwatch/agent/agent.hpp"
#include "postwatch/agent/agent_config.hpp"
#include "postwatch/agent/event_json.hpp"
#include "postwatch/agent/memory_backlog.hpp"
#include "postwatch/agent/spool_store.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>

#include <spdlog/spdlog.h>

#include <condition_variable>
#include <fstream>
#include <future>
#include <mutex>

#include <unistd.h>

using namespace postwatch;
using namespace postwatch::agent;

namespace {

const IndicatorCatalogue& catalogue() { return test::shipped_catalogue(); }

std::string config_error(const std::string& json) {
  test::TempDir dir;
  auto file = dir.path() / "agent.json";
  std::ofstream(file) << json;
  try {
    AgentConfig::load(file);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(AgentConfig, LoadsAValidFile) {
  test::TempDir dir;
  auto file = dir.path() / "agent.json";
  std::ofstream(file) << R"({"broker_uri": "tcp://127.0.0.1:1883", "allow_plaintext": true, "agent_id": "gw-1",
    "post_id": "bamako", "spool": {"dir": "spool", "overflow": "drop_oldest", "fsync": "every_record"}, "batch": {"max_events": 100, "max_delay_ms": 50},
    "heartbeat_interval_s": 10})";
  auto c = AgentConfig::load(file);
  EXPECT_EQ(c.agent_id, "gw-1");
  EXPECT_EQ(c.post_id, "bamako");
  EXPECT_EQ(c.batch_max_events, 100u);
  EXPECT_EQ(c.batch_max_delay.count(), 50);
  EXPECT_EQ(c.heartbeat_interval.count(), 10);
  EXPECT_EQ(c.spool.dir, dir.path() / "spool");  // relative to the config file
  EXPECT_EQ(c.spool.overflow, OverflowPolicy::DropOldest);
  EXPECT_EQ(c.spool.fsync, FsyncPolicy::EveryRecord);
  EXPECT_FALSE(c.config_hash.empty());
  EXPECT_TRUE(c.allow_plaintext);
}

TEST(AgentConfig, ErrorsNameTheFieldAndProblem) {
  EXPECT_NE(config_error(R"({"post_id": "bamako"})").find("agent_id: missing"), std::string::npos);
  EXPECT_NE(config_error(R"({"agent_id": "A B", "post_id": "bamako"})").find("agent_id: must match"),
            std::string::npos);
  EXPECT_NE(config_error(R"({"agent_id": "a", "post_id": "bamako", "colour": 1})").find("colour: unknown setting"),
            std::string::npos);
  EXPECT_NE(config_error(R"({"agent_id": "a", "post_id": "bamako", "batch": {"max_events": 0}})")
                .find("batch.max_events: must be between 1 and 10000"),
            std::string::npos);
  EXPECT_NE(config_error(R"({"agent_id": "a", "post_id": "bamako", "broker_uri": "http://x"})").find("broker_uri"),
            std::string::npos);
  EXPECT_NE(config_error("{not json").find("not valid JSON"), std::string::npos);
  EXPECT_NE(config_error(R"({"agent_id": "a", "heartbeat_s": 1e999})").find("not valid JSON"), std::string::npos);
}

TEST(AgentConfig, DeliveryConfirmDefaultsToTheAggregator) {
  test::TempDir dir;
  auto file = dir.path() / "agent.json";
  std::ofstream(file) << R"({"agent_id": "gw-1", "post_id": "bamako"})";
  EXPECT_EQ(AgentConfig::load(file).confirm, DeliveryConfirmMode::Aggregator);
  std::ofstream(file) << R"({"agent_id": "gw-1", "post_id": "bamako", "delivery": {"confirm": "broker"}})";
  EXPECT_EQ(AgentConfig::load(file).confirm, DeliveryConfirmMode::Broker);
  std::ofstream(file) << R"({"agent_id": "gw-1", "post_id": "bamako", "delivery": {"confirm": "aggregator"}})";
  EXPECT_EQ(AgentConfig::load(file).confirm, DeliveryConfirmMode::Aggregator);

  EXPECT_NE(config_error(R"({"agent_id": "a", "post_id": "bamako", "delivery": {"confirm": "puback"}})")
                .find("delivery.confirm: must be aggregator or broker"),
            std::string::npos);
  EXPECT_NE(config_error(R"({"agent_id": "a", "post_id": "bamako", "delivery": {"confirm": true}})")
                .find("delivery.confirm: must be a string"),
            std::string::npos);
  EXPECT_NE(config_error(R"({"agent_id": "a", "post_id": "bamako", "delivery": {"timeout_s": 5}})")
                .find("delivery.timeout_s: unknown setting (known here: confirm)"),
            std::string::npos);
  EXPECT_NE(config_error(R"({"agent_id": "a", "post_id": "bamako", "delivery": "broker"})")
                .find("delivery: must be an object"),
            std::string::npos);
}

TEST(EventJson, ParsesEachKind) {
  IndicatorEvent e;
  ASSERT_EQ(parse_event_json(R"({"indicator": "terrorism_threat_level", "value": 4, "note": "n",
                                 "tags": {"src": "dsc"}, "observed_at_ms": 1700000000000})",
                             catalogue(), e),
            "");
  EXPECT_EQ(e.kind, ValueKind::Level);
  EXPECT_EQ(e.number, 4);
  EXPECT_EQ(e.note, "n");
  EXPECT_EQ(e.observed_at_ms, 1700000000000);
  ASSERT_EQ(e.tags.size(), 1u);
  ASSERT_EQ(parse_event_json(R"({"indicator": "situation_note", "value": "calm"})", catalogue(), e), "");
  EXPECT_EQ(e.kind, ValueKind::Text);
  EXPECT_EQ(e.text, "calm");
}

TEST(EventJson, RejectsBadInputWithAReason) {
  IndicatorEvent e;
  EXPECT_EQ(parse_event_json("{oops", catalogue(), e), "not valid JSON");
  EXPECT_NE(parse_event_json(R"({"indicator": "nope", "value": 1})", catalogue(), e).find("unknown indicator 'nope'"),
            std::string::npos);
  EXPECT_NE(parse_event_json(R"({"indicator": "terrorism_threat_level"})", catalogue(), e).find("'value'"),
            std::string::npos);
  EXPECT_NE(parse_event_json(R"({"indicator": "terrorism_threat_level", "value": "high"})", catalogue(), e)
                .find("must be a number"),
            std::string::npos);
  EXPECT_NE(parse_event_json(R"({"indicator": "terrorism_threat_level", "value": 1, "extra": 1})", catalogue(), e)
                .find("unknown field 'extra'"),
            std::string::npos);
}

TEST(AgentSubmit, ValidatesBeforeAccepting) {
  AgentConfig cfg;
  cfg.agent_id = "t1";
  cfg.post_id = "bamako";
  auto cat = std::make_shared<const IndicatorCatalogue>(catalogue());
  Agent agent(cfg, cat, std::make_unique<MemoryBacklog>(2), spdlog::default_logger());
  IndicatorEvent e{0, 0, "terrorism_threat_level", ValueKind::Level, 9, "", "", {}};
  auto r = agent.submit(e);
  EXPECT_FALSE(r.accepted);
  EXPECT_NE(r.error.find("outside"), std::string::npos);
  e.number = 3;
  EXPECT_TRUE(agent.submit(e).accepted);
  auto second = agent.submit(e);
  EXPECT_TRUE(second.accepted);
  EXPECT_EQ(second.seq, 2u);
  auto full = agent.submit(e);  // backlog bound of 2 reached
  EXPECT_FALSE(full.accepted);
  EXPECT_NE(full.error.find("backlog full"), std::string::npos);
  auto s = agent.stats();
  EXPECT_EQ(s.accepted, 2u);
  EXPECT_EQ(s.rejected, 2u);
  EXPECT_EQ(s.backlog.events, 2u);
}

// identity.pkcs11 (docs/security.md, "Key custody"): all three fields, paths relative to the
// file; --check-config also looks for the module and the PIN file.
TEST(AgentConfig, APkcs11TokenNeedsItsModuleTokenAndPinFile) {
  test::TempDir dir;
  auto file = dir.path() / "agent.json";
  std::ofstream(file) << R"({"agent_id": "gw-1", "post_id": "bamako", "identity": {"pkcs11":
    {"module": "/usr/lib/softhsm/libsofthsm2.so", "token": "postwatch", "pin_file": "token.pin"}}})";
  auto c = AgentConfig::load(file);
  EXPECT_TRUE(c.identity.pkcs11.enabled());
  EXPECT_EQ(c.identity.pkcs11.token, "postwatch");
  EXPECT_EQ(c.identity.pkcs11.pin_file, dir.path() / "token.pin");

  EXPECT_NE(config_error(R"({"agent_id": "a", "post_id": "bamako", "identity": {"pkcs11": {"module": "m.so"}}})")
                .find("identity.pkcs11.token: must be set"),
            std::string::npos);
  EXPECT_NE(config_error(R"({"agent_id": "a", "post_id": "bamako", "identity": {"pkcs11": {"module": "m.so",
    "token": "t"}}})")
                .find("identity.pkcs11.pin_file: must be set"),
            std::string::npos);
  EXPECT_NE(config_error(R"({"agent_id": "a", "post_id": "bamako", "identity": {"pkcs11": {"slot": 0}}})")
                .find("identity.pkcs11.slot: unknown setting (known here: module, token, pin_file)"),
            std::string::npos);
  EXPECT_NE(config_error(R"({"agent_id": "a", "post_id": "bamako", "identity": {"pkcs11": "softhsm"}})")
                .find("identity.pkcs11: must be an object"),
            std::string::npos);

  std::ofstream(file) << R"({"agent_id": "gw-1", "post_id": "bamako", "allow_plaintext": true, "identity": {"pkcs11":
    {"module": "no-such-module.so", "token": "postwatch", "pin_file": "token.pin"}}})";
  std::ofstream(dir.path() / "token.pin") << "1234\n";
  std::filesystem::permissions(dir.path() / "token.pin",
                               std::filesystem::perms::owner_all | std::filesystem::perms::group_read);
  auto check = AgentConfig::validate(file, test::catalogue_path());
  auto all = check.describe_all();
  EXPECT_NE(all.find("identity.pkcs11.module: no such file"), std::string::npos) << all;
  EXPECT_NE(all.find("identity.pkcs11.pin_file:"), std::string::npos) << all;
  EXPECT_NE(all.find("chmod 600"), std::string::npos) << all;
}

// A slow disk holds up the agent's upkeep only: while the interval fdatasync of its spool hangs
// (a worn SD card), another source's submit() is accepted at once. Before, the upkeep synced
// under the agent's one lock, so every source and Paho's thread waited for the disk.
TEST(AgentSubmit, AnFdatasyncThatHangsDoesNotHoldUpSubmit) {
  test::TempDir dir;
  std::mutex mu;
  std::condition_variable cv;
  bool syncing = false, release = false;
  SpoolOptions opt{
      .dir = dir.path() / "spool", .fsync = FsyncPolicy::Interval, .fsync_interval = std::chrono::milliseconds(0)};
  opt.datasync = [&](int fd) {
    std::unique_lock lk(mu);
    syncing = true;
    cv.notify_all();
    cv.wait(lk, [&] { return release; });
    return ::fdatasync(fd);
  };
  AgentConfig cfg;
  cfg.agent_id = "t1";
  cfg.post_id = "bamako";
  cfg.broker_uri = "tcp://127.0.0.1:1";  // no broker: the upkeep runs all the same
  cfg.allow_plaintext = true;
  auto log = spdlog::default_logger();
  Agent agent(cfg, std::make_shared<const IndicatorCatalogue>(catalogue()),
              std::make_unique<SpoolStore>(std::move(opt), log), log);
  agent.start();
  IndicatorEvent e{0, 0, "terrorism_threat_level", ValueKind::Level, 2, "", "", {}};
  ASSERT_TRUE(agent.submit(e).accepted);  // the segment now needs a sync
  {
    std::unique_lock lk(mu);
    ASSERT_TRUE(cv.wait_for(lk, std::chrono::seconds(10), [&] { return syncing; })) << "no upkeep sync";
  }
  auto other_source = std::async(std::launch::async, [&] { return agent.submit(e); });
  const bool answered = other_source.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
  {
    std::lock_guard lk(mu);
    release = true;
  }
  cv.notify_all();
  EXPECT_TRUE(answered) << "submit() waited for the disk";
  EXPECT_TRUE(other_source.get().accepted);
  agent.stop();
}
