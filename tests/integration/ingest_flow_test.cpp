// MQTT ingest back-pressure against a real Mosquitto: while the io thread or the store
// is behind, paho's delivery thread waits, the broker keeps the rest in the session,
// and nothing is lost when the consumer catches up.
#include "ingest/mqtt_ingest.hpp"
#include "support/captured_log.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <boost/asio/executor_work_guard.hpp>

#include <atomic>
#include <future>
#include <sstream>
#include <thread>

using namespace postwatch;
using namespace postwatch::aggregator;
using namespace postwatch::test;
using namespace std::chrono_literals;

namespace {

class IngestFlow : public ::testing::Test {
 protected:
  TempDir dir;
  MosquittoBroker broker;
  boost::asio::io_context io;
  std::shared_ptr<postwatch::test::CapturedLog> log_text_sink = std::make_shared<postwatch::test::CapturedLog>();
  postwatch::test::CapturedLog& log_text = *log_text_sink;
  std::shared_ptr<spdlog::logger> log = std::make_shared<spdlog::logger>("flow", log_text_sink);
  std::atomic<int> handled{0};
  std::chrono::microseconds handler_cost{0};  // a slow io thread, set before start_ingest
  std::unique_ptr<MqttIngest> ingest;
  std::thread io_thread;

  void start_ingest(IngestFlowControl flow) {
    ingest = std::make_unique<MqttIngest>(
        io, broker.uri(), "flow-test", std::vector<std::string>{"flowtest/#"}, log,
        [this](const std::string&, const std::string&, const Prechecked&) {
          if (handler_cost.count() > 0) std::this_thread::sleep_for(handler_cost);
          handled += 1;
        },
        std::move(flow));
    ingest->start();
    ASSERT_TRUE(wait_until([&] { return ingest->subscribed(); }, 10s)) << log_text.str();
  }
  void run_io() {
    io_thread = std::thread([this] {
      auto work = boost::asio::make_work_guard(io);
      io.run();
    });
  }
  // QoS 1 from another process: Paho C runs one receive thread for every client in a
  // process, so a paused delivery would also hold up an in-process publisher's PUBACKs.
  void publish(int n) {
    ChildProcess pub({"mosquitto_pub", "-h", "127.0.0.1", "-p", std::to_string(broker.port()), "-i", "flow-publisher",
                      "-t", "flowtest/x", "-q", "1", "-l"},
                     dir.path() / "pub.log", true);
    for (int i = 0; i < n; ++i) ASSERT_TRUE(pub.write_stdin(std::to_string(i) + "\n"));
    pub.close_stdin();
    ASSERT_EQ(pub.wait(20s), 0) << pub.log();
  }
  void TearDown() override {
    if (ingest) ingest->stop();
    io.stop();
    if (io_thread.joinable()) io_thread.join();
  }
};

}  // namespace

TEST_F(IngestFlow, PausesWhileTheIoThreadIsBehindThenDeliversEverything) {
  start_ingest({100, {}, 60s});
  publish(1000);  // the io thread is not running: nothing is handled yet
  ASSERT_TRUE(wait_until([&] { return ingest->flow().queued_messages == 100 && ingest->flow().pauses == 1; }, 10s))
      << ingest->flow().queued_messages << log_text.str();
  EXPECT_EQ(handled, 0);
  EXPECT_NE(log_text.str().find("back-pressure: 100 message(s) queued"), std::string::npos) << log_text.str();

  run_io();
  ASSERT_TRUE(wait_until([&] { return handled == 1000; }, 20s)) << handled << "\n" << log_text.str();
  auto f = ingest->flow();
  EXPECT_EQ(f.queued_messages, 0u);
  EXPECT_GE(f.pauses, 1u);
  EXPECT_EQ(f.overrides, 0u);
  EXPECT_NE(log_text.str().find("back-pressure: resumed"), std::string::npos);
}

// An io thread slower than the broker keeps the queue at its bound for as long as messages
// come. The gate opens again only at half the bound, so it closes once per 50 messages here,
// not once per message, and says so once, not thousands of times (seen in the e2e benchmark:
// 1 600 warnings a second).
TEST_F(IngestFlow, AQueueHeldAtItsBoundPausesOncePerHalfQueueAndLogsOneLine) {
  handler_cost = 300us;
  start_ingest({100, {}, 60s});
  run_io();
  publish(3000);
  ASSERT_TRUE(wait_until([&] { return handled == 3000; }, 30s)) << handled;
  auto f = ingest->flow();
  EXPECT_GE(f.pauses, 1u) << "the queue never reached its bound: the test proves nothing";
  EXPECT_LE(f.pauses, 3000u / 50 + 1);
  EXPECT_EQ(f.overrides, 0u);
  const std::string text = log_text.str();
  std::size_t lines = 0;
  for (auto at = text.find("pausing MQTT delivery"); at != std::string::npos;
       at = text.find("pausing MQTT delivery", at + 1))
    ++lines;
  EXPECT_GE(lines, 1u);
  EXPECT_LE(lines, 2u) << f.pauses << " pauses:\n" << text.substr(0, 2000);
}

// While the gate is closed, Paho's delivery thread waits inside Paho's callback, holding
// Paho's process-wide mutex. The io thread's own Paho calls (is the client connected, publish
// a confirmation) must not wait for it: the gate waits for that very thread. Seen in the e2e
// benchmark: the io thread stuck in is_connected() for the whole 10 s max_pause.
TEST_F(IngestFlow, TheIoThreadsPahoCallsDoNotWaitForAClosedGate) {
  start_ingest({100, {}, 60s});
  publish(1000);  // the io thread is not running: the gate closes at 100
  ASSERT_TRUE(wait_until([&] { return ingest->flow().pauses == 1; }, 10s)) << log_text.str();
  auto connected = std::async(std::launch::async, [&] { return ingest->connected(); });
  ASSERT_EQ(connected.wait_for(5s), std::future_status::ready) << "connected() waits for the closed gate";
  EXPECT_FALSE(connected.get()) << "while the gate is closed the outbox must not publish";
  auto published =
      std::async(std::launch::async, [&] { return ingest->publish_tracked(1, "flowtest/out", "x", false); });
  ASSERT_EQ(published.wait_for(5s), std::future_status::ready) << "publish_tracked() waits for the closed gate";
  EXPECT_FALSE(published.get());

  run_io();  // the gate opens; everything arrives, and the client is usable again
  ASSERT_TRUE(wait_until([&] { return handled == 1000; }, 20s)) << handled;
  EXPECT_TRUE(wait_until([&] { return ingest->connected(); }, 5s));
  EXPECT_EQ(ingest->flow().overrides, 0u);
}

// The same for a change of subscriptions (a clustered instance taking a partition): asked on
// the io thread while the gate is closed, it returns at once and subscribes once the gate
// opens; the grant arrives and messages on the new filter are delivered.
TEST_F(IngestFlow, AChangeOfFiltersDoesNotWaitForAClosedGate) {
  start_ingest({100, {}, 60s});
  publish(1000);
  ASSERT_TRUE(wait_until([&] { return ingest->flow().pauses == 1; }, 10s)) << log_text.str();
  std::atomic<int> grants{0};
  auto changed = std::async(std::launch::async, [&] {
    ingest->change_filters({"flowextra/#"}, {}, [&](bool ok) { grants += ok ? 1 : 100; });
  });
  ASSERT_EQ(changed.wait_for(5s), std::future_status::ready) << "change_filters() waits for the closed gate";
  EXPECT_EQ(grants, 0);

  run_io();
  ASSERT_TRUE(wait_until([&] { return grants == 1; }, 10s)) << grants << log_text.str();
  ASSERT_TRUE(wait_until([&] { return handled == 1000; }, 20s)) << handled;
  ChildProcess pub({"mosquitto_pub", "-h", "127.0.0.1", "-p", std::to_string(broker.port()), "-t", "flowextra/y", "-q",
                    "1", "-m", "z"},
                   dir.path() / "pub-extra.log");
  ASSERT_EQ(pub.wait(10s), 0) << pub.log();
  EXPECT_TRUE(wait_until([&] { return handled == 1001; }, 10s)) << handled;
}

TEST_F(IngestFlow, PausesWhileTheStoreIsBehind) {
  std::atomic<bool> behind{true};
  start_ingest({4096, [&] { return behind.load(); }, 60s});
  run_io();
  publish(50);
  ASSERT_TRUE(wait_until([&] { return ingest->flow().pauses == 1; }, 10s)) << log_text.str();
  EXPECT_EQ(handled, 0) << "the store is behind: the first message waits";
  behind = false;
  ASSERT_TRUE(wait_until([&] { return handled == 50; }, 10s)) << handled;
  EXPECT_EQ(ingest->flow().overrides, 0u);
}

// A consumer stuck for longer than max_pause must not let paho's keep-alive lapse: the
// gate opens (counted and logged), the connection stays, and messages flow.
TEST_F(IngestFlow, AStuckStoreOpensTheGateAfterMaxPause) {
  start_ingest({4096, [] { return true; }, 300ms});
  run_io();
  publish(20);
  ASSERT_TRUE(wait_until([&] { return handled == 20; }, 10s)) << handled << log_text.str();
  auto f = ingest->flow();
  EXPECT_EQ(f.pauses, 1u);
  EXPECT_EQ(f.overrides, 1u);
  EXPECT_GE(f.paused_ms, 300u);
  EXPECT_TRUE(ingest->connected());
  EXPECT_NE(log_text.str().find("taking messages anyway"), std::string::npos);
}
