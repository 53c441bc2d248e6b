// The aggregator's durability: SIGKILL it mid-stream, restart it on the same data
// directory, and it must end in exactly the state of a run that never crashed.
#include "postwatch/agent/agent.hpp"
#include "postwatch/agent/memory_backlog.hpp"
#include "support/aggregator_process.hpp"
#include "support/loopback_agent_config.hpp"
#include "support/mqtt_fault_proxy.hpp"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <random>

using namespace postwatch;
using namespace postwatch::test;
using nlohmann::json;

namespace {

struct Fleet {
  std::vector<std::unique_ptr<agent::Agent>> agents;
  std::mt19937 rng{7};
  int sent = 0;

  Fleet(const std::string& uri) {
    auto cat = std::make_shared<const IndicatorCatalogue>(IndicatorCatalogue::load(catalogue_path()));
    for (const char* post : {"bamako", "kabul", "caracas"}) {
      auto cfg = loopback_agent_config(uri, "gw", post);
      cfg.batch_max_delay = std::chrono::milliseconds(5);
      agents.push_back(std::make_unique<agent::Agent>(cfg, cat, std::make_unique<agent::MemoryBacklog>(100000),
                                                      spdlog::default_logger()));
      agents.back()->start();
    }
  }
  // Levels, counts and gauges across the three posts.
  void send(int n) {
    static const std::vector<std::pair<const char*, ValueKind>> kinds = {
        {"terrorism_threat_level", ValueKind::Level},
        {"conflict_early_warning_level", ValueKind::Level},
        {"terrorist_attacks", ValueKind::Count},
        {"cyber_incidents", ValueKind::Count},
        {"displaced_people", ValueKind::Gauge}};
    for (int i = 0; i < n; ++i, ++sent) {
      auto& a = *agents[rng() % agents.size()];
      auto [id, kind] = kinds[rng() % kinds.size()];
      double v = kind == ValueKind::Level ? 1 + rng() % 5 : kind == ValueKind::Count ? rng() % 3 : rng() % 50000;
      ASSERT_TRUE(a.submit(IndicatorEvent{0, 0, id, kind, v, "", "", {}}).accepted);
    }
    for (auto& a : agents) ASSERT_TRUE(a->wait_until_drained(std::chrono::seconds(20)));
  }
};

bool caught_up(AggregatorProcess& agg, int n) {
  auto s = agg.get("/api/v1/stats");
  return s.is_object() && s["events_accepted"] == n && s["events_persisted"] == n;
}

// What an operator sees: goals (shown and raw), and every post's values.
json board_view(AggregatorProcess& agg) {
  json view;
  // Keep each response alive for its loop: a range-for over a temporary's member dangles.
  const json goals = agg.get("/api/v1/goals");
  for (const auto& g : goals.value("goals", json::array()))
    view["goals"].push_back({g["id"], g["status"], g["raw_status"], g["score"], g["posts_reporting"]});
  for (const char* post : {"bamako", "kabul", "caracas"}) {
    const json detail = agg.get(std::string("/api/v1/posts/") + post);
    for (const auto& ind : detail.value("indicators", json::array()))
      view["posts"][post][ind["id"].get<std::string>()] = {ind["value"], ind["status"], ind["observed_at_ms"]};
  }
  auto s = agg.get("/api/v1/stats");
  view["counts"] = {s["events_accepted"], s["events_gaps"], s["events_late"]};
  return view;
}

}  // namespace

TEST(AggregatorRestart, SigkillAndRestartEndsInTheStateOfAnUninterruptedRun) {
  MosquittoBroker broker("", /*persistent=*/true);
  TempDir control_dir, subject_dir;
  AggregatorProcess control(broker, control_dir);
  auto subject = std::make_unique<AggregatorProcess>(broker, subject_dir, std::vector<std::string>{}, "subject");
  Fleet fleet(broker.uri());

  fleet.send(3000);
  ASSERT_TRUE(wait_until([&] { return caught_up(control, fleet.sent) && caught_up(*subject, fleet.sent); },
                         std::chrono::seconds(20)));
  subject->process().signal(SIGKILL);
  subject->process().wait(std::chrono::seconds(5));
  subject.reset();

  fleet.send(2000);  // arrives while the subject is dead: the broker queues it for its session
  ASSERT_TRUE(wait_until([&] { return caught_up(control, fleet.sent); }, std::chrono::seconds(20)));

  subject = std::make_unique<AggregatorProcess>(broker, subject_dir, std::vector<std::string>{}, "subject");
  EXPECT_NE(subject->process().log().find("replayed 3000 event(s)"), std::string::npos) << subject->process().log();
  fleet.send(1000);
  ASSERT_TRUE(wait_until([&] { return caught_up(control, fleet.sent) && caught_up(*subject, fleet.sent); },
                         std::chrono::seconds(20)))
      << subject->get("/api/v1/stats").dump() << "\nBROKER\n"
      << broker.log() << "\nSUBJECT\n"
      << subject->process().log();
  // Both evaluate at their next tick; compare once both show the same state version of the world.
  json a, b;
  EXPECT_TRUE(wait_until(
      [&] {
        a = board_view(control);
        b = board_view(*subject);
        return a == b;
      },
      std::chrono::seconds(5)))
      << "control:\n"
      << a.dump(1) << "\nsubject:\n"
      << b.dump(1);
  EXPECT_EQ(b["counts"][0], 6000);
  EXPECT_EQ(b["counts"][1], 0);  // no gaps
}

// `--broker` with several URIs (a NATS cluster's MQTT listeners): the aggregator uses the next
// when one is down, at start and after losing its broker; a list mixing TLS and plaintext is
// refused at start.
TEST(AggregatorBrokerList, MovesToTheNextBrokerWhenOneIsDown) {
  TempDir dir;
  MosquittoBroker first, second;
  first.stop();
  AggregatorProcess agg(first.uri() + "," + second.uri(), dir);  // ready: subscribed on `second`
  EXPECT_NE(agg.process().log().find("connected to one of the brokers"), std::string::npos) << agg.process().log();
  first.start();
  second.kill();
  // Paho's automatic reconnect tries the list from its start: `first` again.
  EXPECT_TRUE(wait_until(
      [&] {
        auto log = agg.process().log();
        auto lost = log.find("connection to broker lost");
        return lost != std::string::npos && log.find("subscribed; ready", lost) != std::string::npos;
      },
      std::chrono::seconds(30)))
      << agg.process().log();
  EXPECT_EQ(http_get(agg.port(), "/readyz").status, 200);

  TempDir dir2;
  ChildProcess mixed({(binary_dir() / "aggregator" / "postwatch-aggregator").string(), "--broker",
                      second.uri() + ",ssl://127.0.0.1:8883", "--catalogue", catalogue_path().string(), "--data-dir",
                      (dir2.path() / "data").string()},
                     dir2.path() / "mixed.log");
  EXPECT_EQ(mixed.wait(std::chrono::seconds(15)), 2) << mixed.log();
  EXPECT_NE(mixed.log().find("both TLS and plaintext"), std::string::npos) << mixed.log();
}

// The broker refuses, on every reconnect, the publish the aggregator had in flight when its
// connection broke: what Mosquitto does when paho.mqtt.c resends such a publish from buffers
// it has freed ("disconnected due to malformed packet"; mqtt_ingest_connection.cpp, rebuild()). Paho by
// itself reconnects and is closed again for ever, and no agent is confirmed again. The
// aggregator sees the connection closed right after each connect, starts a fresh client, and
// every event is confirmed and stored once.
TEST(AggregatorBrokerFault, AnInFlightPublishRefusedOnEveryReconnectIsLeftBehind) {
  TempDir dir;
  MosquittoBroker broker;
  MqttFaultProxy proxy(broker.port());
  AggregatorProcess agg(proxy.uri(), dir);
  auto cfg = loopback_agent_config(broker.uri(), "gw", "tripoli");  // the agent's own path is sound
  cfg.batch_max_delay = std::chrono::milliseconds(5);
  auto cat = std::make_shared<const IndicatorCatalogue>(IndicatorCatalogue::load(catalogue_path()));
  agent::Agent agent(cfg, cat, std::make_unique<agent::MemoryBacklog>(10000), spdlog::default_logger());
  agent.start();
  auto submit = [&](int n) {
    for (int i = 0; i < n; ++i)
      ASSERT_TRUE(agent.submit(IndicatorEvent{0, 0, "terrorist_attacks", ValueKind::Count, 1, "", "", {}}).accepted);
  };
  submit(50);
  ASSERT_TRUE(agent.wait_until_drained(std::chrono::seconds(20))) << agg.process().log();

  // The aggregator's next publishes (the confirmation of these events) stay in flight...
  proxy.drop_publishes(true);
  submit(50);
  ASSERT_TRUE(wait_until([&] { return agg.events_accepted() == 100 && proxy.publishes_dropped() > 0; },
                         std::chrono::seconds(20)));
  // ...when its connection breaks; from now on each resend of them closes the connection.
  proxy.refuse_resends(true);
  proxy.drop_publishes(false);
  proxy.cut();
  ASSERT_TRUE(wait_until([&] { return proxy.resends_refused() >= 2; }, std::chrono::seconds(30)))
      << agg.process().log();

  // Well before the outbox's own 30 s for a message that never got an answer.
  ASSERT_TRUE(agent.wait_until_drained(std::chrono::seconds(25))) << agg.process().log();
  const auto log = agg.process().log();
  EXPECT_NE(log.find("starting a fresh MQTT client"), std::string::npos) << log;
  EXPECT_TRUE(wait_until([&] { return agg.events_accepted() == 100; }, std::chrono::seconds(10)))
      << agg.get("/api/v1/stats").dump();
  auto s = agg.get("/api/v1/stats");
  EXPECT_EQ(s["events_accepted"], 100) << s.dump();
  agent.stop();
}
