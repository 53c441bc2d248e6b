// The live stream (/api/v1/stream) over a real WebSocket against the real aggregator
// binary and a real Mosquitto. No sleeps: every wait is a read on the socket with a
// deadline, or a poll with one.
#include "support/aggregator_process.hpp"
#include "support/feed_http.hpp"
#include "support/mqtt_probe.hpp"
#include "support/stream_client.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <csignal>

using namespace postwatch;
using namespace postwatch::test;
using nlohmann::json;
using verb = boost::beast::http::verb;
using namespace std::chrono_literals;

class FeedStream : public ::testing::Test {
 protected:
  TempDir dir;
  MosquittoBroker broker;
  TokensFile tokens{dir};
  AggregatorProcess aggregator{broker, dir, {"--tokens-file", tokens.path.string()}};

  std::string stream_target(const std::string& token = TokensFile::kRead) {
    return "/api/v1/stream" + (token.empty() ? std::string() : "?token=" + token);
  }
};

TEST_F(FeedStream, SnapshotFirstThenTheGoalChangeAsItHappens) {
  StreamClient ws;
  ASSERT_EQ(ws.connect(aggregator.port(), stream_target()), 101) << ws.handshake_body();
  auto snap = ws.next(5s);
  ASSERT_TRUE(snap) << ws.error().message();
  EXPECT_EQ((*snap)["type"], "snapshot");
  EXPECT_EQ((*snap)["goals"].size(), 13u);
  EXPECT_EQ((*snap)["pillars"].size(), 3u);
  EXPECT_TRUE((*snap)["alarms"].is_array());
  EXPECT_TRUE((*snap)["alarms"].empty());
  for (const auto& g : (*snap)["goals"]) {
    EXPECT_EQ(g["status"], "unknown");
    EXPECT_TRUE(g["score"].is_null()) << "unknown has no score: " << g.dump();
  }
  for (const auto& p : (*snap)["pillars"]) EXPECT_TRUE(p["score"].is_null()) << p.dump();

  // The client is connected before the event: it must see goal 7 turn red.
  MqttProbe pub(broker.uri(), "feed-test-publisher");
  pub.publish_event("sub-saharan-africa", "bamako", "terrorism_threat_level", 5);
  auto change =
      ws.next_where([](const json& m) { return m["type"] == "goal" && m["id"] == 7 && m["status"] == "red"; }, 10s);
  ASSERT_TRUE(change) << "no goal 7 change; error: " << ws.error().message() << "; seen " << ws.seen().size();
  EXPECT_EQ((*change)["change"], "status");
  EXPECT_EQ((*change)["pillar"], "defend");
  ASSERT_TRUE((*change)["score"].is_number());
  EXPECT_LE((*change)["score"].get<double>(), 30.0) << "red scores in the red band";
  // The pillar follows, and the goal's alarm is raised.
  auto pillar = ws.next_where([](const json& m) { return m["type"] == "pillar" && m["id"] == "defend"; }, 5s);
  ASSERT_TRUE(pillar);
  EXPECT_EQ((*pillar)["status"], "red");
  bool alarm_seen = false;
  for (const auto& m : ws.seen()) alarm_seen = alarm_seen || (m["type"] == "alarm" && m["goal"] == 7);
  if (!alarm_seen)
    alarm_seen = ws.next_where([](const json& m) { return m["type"] == "alarm" && m["goal"] == 7; }, 5s).has_value();
  EXPECT_TRUE(alarm_seen);
}

TEST_F(FeedStream, AcknowledgementIsPushed) {
  MqttProbe pub(broker.uri(), "feed-test-publisher");
  pub.publish_event("sub-saharan-africa", "bamako", "terrorism_threat_level", 5);
  std::uint64_t id = 0;
  ASSERT_TRUE(wait_until(
      [&] {
        auto r = http_call(aggregator.port(), verb::get, "/api/v1/alarms?state=open", bearer(TokensFile::kRead));
        for (const auto& a : r.json_at("alarms"))
          if (a["kind"] == "goal") id = a["id"].get<std::uint64_t>();
        return id != 0;
      },
      10s));
  StreamClient ws;
  ASSERT_EQ(ws.connect(aggregator.port(), stream_target(), bearer(TokensFile::kRead)), 101);
  auto snap = ws.next(5s);
  ASSERT_TRUE(snap);
  ASSERT_EQ((*snap)["alarms"].size(), 1u);  // the open alarm is in the snapshot
  EXPECT_EQ((*snap)["alarms"][0]["id"], id);

  auto r = http_call(aggregator.port(), verb::post, "/api/v1/alarms/" + std::to_string(id) + "/ack",
                     bearer(TokensFile::kOperator));
  ASSERT_EQ(r.status, 200) << r.body;
  auto acked = ws.next_where([&](const json& m) { return m["type"] == "alarm" && m["id"] == id; }, 5s);
  ASSERT_TRUE(acked);
  EXPECT_EQ((*acked)["acknowledged"], true);
  EXPECT_EQ((*acked)["ack"]["by"], "duty officer");
}

TEST_F(FeedStream, RefusesMissingTokensWrongPathsAndForeignOrigins) {
  StreamClient anonymous;
  EXPECT_EQ(anonymous.connect(aggregator.port(), stream_target("")), 401);
  EXPECT_NE(anonymous.handshake_body().find("\"status\":401"), std::string::npos) << anonymous.handshake_body();
  StreamClient wrong;
  EXPECT_EQ(wrong.connect(aggregator.port(), stream_target("not-a-token-of-ours-0000")), 401);
  StreamClient elsewhere;
  EXPECT_EQ(elsewhere.connect(aggregator.port(), "/api/v1/goals?token=" + std::string(TokensFile::kRead)), 404);
  StreamClient foreign;
  EXPECT_EQ(foreign.connect(aggregator.port(), stream_target(), {{"Origin", "http://evil.example"}}), 403);
  StreamClient same_origin;
  EXPECT_EQ(same_origin.connect(aggregator.port(), stream_target(),
                                {{"Origin", "http://127.0.0.1:" + std::to_string(aggregator.port())}}),
            101);
  // The bearer header works as well as ?token=.
  StreamClient header;
  EXPECT_EQ(header.connect(aggregator.port(), "/api/v1/stream", bearer(TokensFile::kRead)), 101);
}

TEST_F(FeedStream, ClientsAreCountedInMetrics) {
  StreamClient a, b;
  ASSERT_EQ(a.connect(aggregator.port(), stream_target()), 101);
  ASSERT_EQ(b.connect(aggregator.port(), stream_target()), 101);
  ASSERT_TRUE(a.next(5s));
  ASSERT_TRUE(b.next(5s));
  auto ws_clients = [&] {
    auto m = http_call(aggregator.port(), verb::get, "/metrics").body;
    auto pos = m.find("\npostwatch_ws_clients ");
    return pos == std::string::npos ? -1 : std::stoi(m.substr(pos + 22));
  };
  EXPECT_TRUE(wait_until([&] { return ws_clients() == 2; }, 5s)) << ws_clients();
  auto stats = http_call(aggregator.port(), verb::get, "/api/v1/stats", bearer(TokensFile::kRead)).json();
  EXPECT_EQ(stats["stream_clients"], 2);
}

TEST_F(FeedStream, ShutdownClosesTheStreamCleanly) {
  StreamClient ws;
  ASSERT_EQ(ws.connect(aggregator.port(), stream_target()), 101);
  ASSERT_TRUE(ws.next(5s));
  aggregator.process().signal(SIGTERM);
  // Reads end with the server's close frame: 1001, going away. An update broadcast just
  // before the signal may come first (seen on a loaded machine), so read past those.
  int updates = 0;
  while (ws.next(10s) && updates < 50) ++updates;
  EXPECT_LT(updates, 50) << "the stream never closed";
  EXPECT_EQ(ws.error(), boost::beast::websocket::error::closed) << ws.error().message();
  EXPECT_EQ(ws.close_reason().code, boost::beast::websocket::close_code::going_away);
  EXPECT_EQ(aggregator.process().wait(10s), 0) << aggregator.process().log();
  EXPECT_NE(aggregator.process().log().find("stopped"), std::string::npos);
}
