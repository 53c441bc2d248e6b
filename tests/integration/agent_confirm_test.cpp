// End-to-end delivery confirmation, agent side: the real postwatch-agent against a real
// Mosquitto and NO aggregator. The test plays the aggregator with an MQTT probe: it
// records every batch the agent publishes and its heartbeats, and publishes DeliveryConfirm
// messages (retained confirmations, resend requests, wrong and garbage ones) on the agent's
// confirm topic. The agent's status.json shows what it did with them.
#include "postwatch/catalogue.hpp"
#include "postwatch/topics.hpp"
#include "postwatch/wire_codec.hpp"
#include "support/agent_config_file.hpp"
#include "support/mqtt_probe.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <csignal>
#include <fstream>
#include <map>
#include <mutex>

using namespace postwatch;
using namespace postwatch::test;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kPost = "bamako";
constexpr const char* kAgent = "gw-1";

std::string agent_topic(topics::Channel channel) {
  static const auto catalogue = IndicatorCatalogue::load(catalogue_path());
  return topics::agent_topic(catalogue.find_post(kPost)->region, kPost, kAgent, channel);
}

// The aggregator's part, played by the test through an MQTT probe: sees the agent's batches and
// heartbeats, confirms.
class FakeAggregator {
 public:
  explicit FakeAggregator(const std::string& uri)
      : events_(agent_topic(topics::Channel::Events)),
        heartbeat_(agent_topic(topics::Channel::Heartbeat)),
        confirm_(agent_topic(topics::Channel::Confirm)),
        probe_(uri, "fake-aggregator-" + std::to_string(::getpid()),
               ProbeOptions().subscribe(events_, 1).subscribe(heartbeat_, 0)) {}

  // A retained confirmation (resend_from 0), or a non-retained resend request.
  void confirm(std::uint64_t through_seq, std::uint64_t resend_from = 0, const std::string& post = kPost,
               const std::string& agent = kAgent) {
    DeliveryConfirm c{agent, post, through_seq, 1700000000000, resend_from};
    auto payload = encode_delivery_confirm(c);
    publish_raw(std::string(payload.begin(), payload.end()), resend_from == 0);
  }
  void publish_raw(const std::string& payload, bool retained) { probe_.publish(confirm_, payload, 1, retained); }

  int times_seen(std::uint64_t seq) {
    auto counts = probe_.seq_counts(events_);
    auto it = counts.find(seq);
    return it == counts.end() ? 0 : it->second;
  }
  // Every seq in [from, to] seen at least once.
  bool saw_all(std::uint64_t from, std::uint64_t to) {
    auto counts = probe_.seq_counts(events_);
    for (auto seq = from; seq <= to; ++seq)
      if (!counts.contains(seq)) return false;
    return true;
  }
  // What the agent's last heartbeat with metrics said it had sent.
  std::uint64_t heartbeat_sent_through() {
    auto beats = probe_.payloads_on(heartbeat_);
    for (auto it = beats.rbegin(); it != beats.rend(); ++it)
      if (auto st = MqttProbe::decode_state(*it); st && st->has_metrics) return st->metrics.sent_through_seq;
    return 0;
  }

 private:
  std::string events_, heartbeat_, confirm_;
  MqttProbe probe_;
};

std::string event_line(int i) {
  return json{{"indicator", "terrorism_threat_level"}, {"value", 1 + i % 5}, {"observed_at_ms", 1700000000000 + i}}
             .dump() +
         "\n";
}

class AgentConfirm : public ::testing::Test {
 protected:
  TempDir dir;
  MosquittoBroker broker;
  FakeAggregator aggregator{broker.uri()};
  fs::path config_file = dir.path() / "agent.json";
  fs::path status_path = dir.path() / "spool" / "status.json";
  std::unique_ptr<ChildProcess> agent;
  int runs = 0;

  void SetUp() override {
    // No "delivery" section: the aggregator confirms, the default.
    AgentConfigFile(broker.uri(), kAgent, kPost, dir.path() / "spool")
        .set("keep_alive_s", 5)
        .set("heartbeat_interval_s", 1)
        .set("batch", {{"max_delay_ms", 10}})
        .write(config_file);
  }

  // `postwatch-agent run` reading events from the test through its stdin.
  void start_agent(bool exit_on_eof = false) {
    std::vector<std::string> argv{(binary_dir() / "agent" / "postwatch-agent").string(), "run", "--config",
                                  config_file.string()};
    if (exit_on_eof) argv.push_back("--exit-on-eof");
    std::filesystem::remove(status_path);  // so status() only shows this run's
    agent = std::make_unique<ChildProcess>(argv, dir.path() / ("agent-" + std::to_string(++runs) + ".log"),
                                           /*pipe_stdin=*/true);
  }
  void write_events(int from, int count) {
    for (int i = from; i < from + count; ++i) ASSERT_TRUE(agent->write_stdin(event_line(i)));
  }
  // The running agent's status.json (rewritten every second), null if not there yet.
  json status() {
    std::ifstream in(status_path);
    if (!in) return nullptr;
    return json::parse(in, nullptr, false);
  }
  // Waits until status.json satisfies `pred`; the failure message shows the last status and the log.
  void expect_status(const std::function<bool(const json&)>& pred, const std::string& what) {
    bool ok = wait_until(
        [&] {
          auto s = status();
          return s.is_object() && pred(s);
        },
        std::chrono::seconds(15));
    EXPECT_TRUE(ok) << "status never showed: " << what << "\nlast status: " << status().dump() << "\nagent log:\n"
                    << (agent ? agent->log() : "");
  }
  // Sent (PUBACKed) all `n` events: the fake aggregator saw them and the agent counted them.
  void expect_sent(std::uint64_t n) {
    ASSERT_TRUE(wait_until([&] { return aggregator.saw_all(1, n); }, std::chrono::seconds(15)))
        << (agent ? agent->log() : "");
    expect_status([&](const json& s) { return s["events_sent"] >= n && s["sent_through_seq"] == n; },
                  "events_sent >= " + std::to_string(n));
  }
};

}  // namespace

TEST_F(AgentConfirm, EventsStayInTheSpoolUntilTheAggregatorConfirmsThem) {
  start_agent(/*exit_on_eof=*/true);
  write_events(0, 10);
  expect_sent(10);
  // The broker acknowledged all ten, yet nothing was released.
  auto s = status();
  EXPECT_EQ(s["delivery_confirm"], "aggregator");
  EXPECT_EQ(s["events_sent"], 10);
  EXPECT_EQ(s["spool_events"], 10);
  EXPECT_EQ(s["events_confirmed"], 0);
  // The heartbeat tells the aggregator how far the broker acknowledged.
  EXPECT_TRUE(wait_until([&] { return aggregator.heartbeat_sent_through() == 10; }, std::chrono::seconds(10)))
      << aggregator.heartbeat_sent_through();

  aggregator.confirm(4);
  expect_status(
      [](const json& s) {
        return s["spool_events"] == 6 && s["events_confirmed"] == 4 && s["confirmed_through_seq"] == 4;
      },
      "4 of 10 released");

  aggregator.confirm(10);
  expect_status([](const json& s) { return s["spool_events"] == 0 && s["events_confirmed"] == 10; }, "all released");
  // Input ends: --exit-on-eof exits 0 once the spool is empty, i.e. everything is confirmed.
  agent->close_stdin();
  EXPECT_EQ(agent->wait(std::chrono::seconds(20)), 0) << agent->log();
  EXPECT_EQ(aggregator.times_seen(1), 1) << "nothing is sent twice without a reason";
}

TEST_F(AgentConfirm, ARestartedAgentHearsTheRetainedConfirmation) {
  start_agent();
  write_events(0, 10);
  expect_sent(10);
  aggregator.confirm(3);
  expect_status([](const json& s) { return s["spool_events"] == 7; }, "3 of 10 released");
  agent->signal(SIGTERM);
  EXPECT_EQ(agent->wait(std::chrono::seconds(20)), 1) << "unconfirmed events left: exit 1\n" << agent->log();

  // Confirmed while the agent is away: the retained message waits for it on the broker.
  aggregator.confirm(8);
  start_agent();
  expect_status(
      [](const json& s) { return s["connected"] == true && s["spool_events"] == 2 && s["confirmed_through_seq"] == 8; },
      "the retained confirmation through 8 released 8 of 10");
  // The unconfirmed rest was sent again.
  EXPECT_TRUE(wait_until([&] { return aggregator.times_seen(10) >= 2; }, std::chrono::seconds(10))) << agent->log();
}

TEST_F(AgentConfirm, AResendRequestSendsAgainFromTheRequestedSeq) {
  start_agent();
  write_events(0, 6);
  expect_sent(6);
  aggregator.confirm(2);  // confirmed: 1..2
  expect_status([](const json& s) { return s["spool_events"] == 4; }, "2 of 6 released");

  aggregator.confirm(2, /*resend_from=*/4);
  ASSERT_TRUE(wait_until([&] { return aggregator.times_seen(4) >= 2 && aggregator.times_seen(6) >= 2; },
                         std::chrono::seconds(10)))
      << agent->log();
  EXPECT_EQ(aggregator.times_seen(3), 1) << "only seqs from the requested one are sent again";
  expect_status([](const json& s) { return s["resend_requests"] == 1; }, "resend_requests 1");
  EXPECT_TRUE(wait_until(
      [&] { return agent->log().find("aggregator asked to resend from seq 4 (3 events)") != std::string::npos; },
      std::chrono::seconds(5)))
      << agent->log();

  // A resend request from a confirmed seq sends from the first unconfirmed one.
  aggregator.confirm(2, /*resend_from=*/1);
  ASSERT_TRUE(wait_until([&] { return aggregator.times_seen(3) >= 2; }, std::chrono::seconds(10))) << agent->log();
  EXPECT_EQ(aggregator.times_seen(1), 1);
  EXPECT_EQ(aggregator.times_seen(2), 1);
  EXPECT_EQ(status()["spool_events"], 4) << "a resend request releases nothing beyond its through_seq";
}

// A broker that acknowledged the last events and lost them (NATS in a stream leader's
// failover) leaves the aggregator no hole to see: after 15 s without a confirmation the agent
// sends again from its first unconfirmed seq by itself.
TEST_F(AgentConfirm, AcknowledgedEventsNobodyConfirmsAreSentAgainAfter15s) {
  start_agent();
  write_events(0, 5);
  expect_sent(5);
  aggregator.confirm(2);  // progress, then nothing more
  expect_status([](const json& s) { return s["spool_events"] == 3; }, "2 of 5 released");
  EXPECT_EQ(aggregator.times_seen(3), 1);
  ASSERT_TRUE(wait_until([&] { return aggregator.times_seen(3) >= 2 && aggregator.times_seen(5) >= 2; },
                         std::chrono::seconds(30)))
      << agent->log();
  EXPECT_EQ(aggregator.times_seen(1), 1) << "confirmed seqs are not sent again";
  EXPECT_EQ(aggregator.times_seen(2), 1);
  expect_status([](const json& s) { return s["stall_resends"] == 1 && s["resend_requests"] == 0; }, "stall_resends 1");
  EXPECT_NE(agent->log().find("events the broker acknowledged through seq 5; sending again from seq 3"),
            std::string::npos)
      << agent->log();
  aggregator.confirm(5);
  expect_status([](const json& s) { return s["spool_events"] == 0 && s["events_confirmed"] == 5; }, "all released");
}

// With an aggregator away for hours, that resend must not send the whole spool again every few
// minutes: only the last window (batch.max_inflight x batch.max_events events).
TEST_F(AgentConfirm, AStalledConfirmationSendsOnlyTheLastWindowAgain) {
  auto config = json::parse(std::ifstream(config_file));
  config["batch"] = {{"max_delay_ms", 10}, {"max_events", 10}, {"max_inflight", 2}};
  std::ofstream(config_file) << config.dump(2);
  start_agent();
  write_events(0, 100);
  expect_sent(100);
  ASSERT_TRUE(wait_until([&] { return aggregator.times_seen(81) >= 2 && aggregator.times_seen(100) >= 2; },
                         std::chrono::seconds(30)))
      << agent->log();
  EXPECT_EQ(aggregator.times_seen(1), 1);
  EXPECT_EQ(aggregator.times_seen(80), 1) << "only the last 2 x 10 events are sent again";
  EXPECT_NE(agent->log().find("through seq 100; sending again from seq 81"), std::string::npos) << agent->log();
}

TEST_F(AgentConfirm, ConfirmationsForAnotherAgentOrGarbageAreCountedAndReleaseNothing) {
  start_agent();
  write_events(0, 5);
  expect_sent(5);
  aggregator.confirm(5, 0, kPost, "gw-2");    // another agent of the post
  aggregator.confirm(5, 0, "kabul", kAgent);  // another post
  aggregator.publish_raw("not a flatbuffer", true);
  aggregator.publish_raw("also not one", true);  // the same error again: counted, logged once
  expect_status([](const json& s) { return s["confirm_rejected"] == 4; }, "confirm_rejected 4");
  auto s = status();
  EXPECT_EQ(s["spool_events"], 5);
  EXPECT_EQ(s["events_confirmed"], 0);
  EXPECT_EQ(s["confirmed_through_seq"], 0);
  auto log = agent->log();
  EXPECT_NE(log.find("for agent bamako/gw-2, not this one (bamako/gw-1)"), std::string::npos) << log;
  EXPECT_NE(log.find("for agent kabul/gw-1, not this one"), std::string::npos) << log;
  auto garbage = log.find("ignored a delivery confirmation on " + agent_topic(topics::Channel::Confirm) + ": ");
  ASSERT_NE(garbage, std::string::npos) << log;
  auto line = log.substr(garbage, log.find('\n', garbage) - garbage);
  EXPECT_EQ(log.find(line, garbage + 1), std::string::npos) << "logged once:\n" << log;

  // The channel itself works: the right confirmation releases.
  aggregator.confirm(5);
  expect_status([](const json& s) { return s["spool_events"] == 0 && s["events_confirmed"] == 5; }, "all released");
}

TEST_F(AgentConfirm, AConfirmationBeyondWhatTheSpoolIssuedReleasesNothing) {
  start_agent();
  write_events(0, 3);
  expect_sent(3);
  // As after a wiped spool: the aggregator's retained confirmation names seqs this spool never issued.
  aggregator.confirm(100);
  expect_status([](const json& s) { return s["confirm_rejected"] == 1; }, "confirm_rejected 1");
  EXPECT_EQ(status()["spool_events"], 3);
  EXPECT_NE(agent->log().find("the aggregator confirms seq 100 but this spool has only issued up to 3; was the spool "
                              "reset?"),
            std::string::npos)
      << agent->log();
  // Nor is it applied once the spool has issued that many: seqs 1..100 of this spool were never confirmed.
  write_events(3, 100);
  expect_sent(103);
  auto s = status();
  EXPECT_EQ(s["spool_events"], 103);
  EXPECT_EQ(s["events_confirmed"], 0);

  // Nor when the broker hands the retained confirmation over again after a reconnect: a client
  // taking over the agent's client id makes the broker drop the agent's connection.
  auto reconnects = s["reconnects"].get<int>();
  { MqttProbe usurper(broker.uri(), "pw-agent-" + std::string(kPost) + "-" + kAgent); }
  expect_status([&](const json& st) { return st["reconnects"] > reconnects && st["connected"] == true; },
                "reconnected");
  expect_status([](const json& st) { return st["confirm_rejected"] == 2; }, "the retained one refused again");
  s = status();
  EXPECT_EQ(s["spool_events"], 103);
  EXPECT_EQ(s["events_confirmed"], 0);
}

TEST_F(AgentConfirm, BrokerModeReleasesOnPubackAndDoesNotListen) {
  auto config = json::parse(std::ifstream(config_file));
  config["delivery"] = {{"confirm", "broker"}};
  std::ofstream(config_file) << config.dump(2);
  start_agent();
  write_events(0, 4);
  expect_sent(4);
  expect_status([](const json& s) { return s["spool_events"] == 0 && s["delivery_confirm"] == "broker"; },
                "released on PUBACK");
  aggregator.confirm(2, /*resend_from=*/1);  // not subscribed: neither counted nor acted on
  aggregator.confirm(1, 0, kPost, "gw-2");
  write_events(4, 1);  // a later event shows the agent went on as before
  expect_sent(5);
  auto s = status();
  EXPECT_EQ(s["resend_requests"], 0);
  EXPECT_EQ(s["confirm_rejected"], 0);
  EXPECT_EQ(aggregator.times_seen(1), 1);
}
