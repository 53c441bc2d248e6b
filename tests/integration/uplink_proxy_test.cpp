// Posts behind a network that lets out only HTTPS through a proxy (docs/agent.md, "Through a
// proxy"): the agent reaches Mosquitto's WebSockets listener over TLS (wss://) through an HTTP
// CONNECT proxy the test runs, and every event is confirmed end to end. A proxy that is not
// there, or that refuses the tunnel, is named in the agent's error, not just "connect failure".
//
// Mosquitto 2.0.11 binds a websockets listener to every interface whatever its listener line
// says (eclipse/mosquitto#2284): for the few seconds of these tests its random port is open
// beyond loopback. Nothing else here leaves loopback.
#include "postwatch/agent/agent.hpp"
#include "postwatch/agent/memory_backlog.hpp"
#include "support/aggregator_process.hpp"
#include "support/http_connect_proxy.hpp"
#include "support/self_signed_cert.hpp"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

using namespace postwatch;
using namespace postwatch::test;

namespace {

agent::AgentConfig ws_agent(const std::string& uri, const std::string& id) {
  agent::AgentConfig cfg;
  cfg.broker_uri = uri;
  cfg.agent_id = id;
  cfg.post_id = "bamako";
  cfg.allow_plaintext = uri.starts_with("ws://");
  cfg.heartbeat_interval = std::chrono::seconds(2);
  return cfg;
}

std::shared_ptr<const IndicatorCatalogue> catalogue() {
  return std::make_shared<const IndicatorCatalogue>(IndicatorCatalogue::load(catalogue_path()));
}

}  // namespace

TEST(UplinkProxy, AnAgentReachesMosquittoOverWssThroughAProxyAndIsConfirmed) {
  TempDir dir;
  SelfSignedCert cert(dir);
  // Mosquitto (started as root) drops to its own user before libwebsockets reads the key: a
  // websockets listener's key must be readable by that user (a throwaway key here).
  std::filesystem::permissions(cert.key, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write |
                                             std::filesystem::perms::group_read | std::filesystem::perms::others_read);
  const unsigned short wss_port = free_port();
  MosquittoBroker broker("listener " + std::to_string(wss_port) + " 127.0.0.1\nprotocol websockets\ncertfile " +
                         cert.cert.string() + "\nkeyfile " + cert.key.string());
  AggregatorProcess aggregator(broker, dir);  // on the broker's plain listener
  HttpConnectProxy proxy({wss_port});         // tunnels to the wss port only, as a site's rules would

  auto cfg = ws_agent("wss://127.0.0.1:" + std::to_string(wss_port), "wss-1");
  cfg.tls.enabled = true;
  cfg.tls.ca_file = cert.cert.string();
  cfg.uplink_proxy = proxy.url();
  agent::Agent a(cfg, catalogue(), std::make_unique<agent::MemoryBacklog>(10000), spdlog::default_logger());
  for (int i = 0; i < 200; ++i)
    ASSERT_TRUE(a.submit({0, 0, "drug_seizures", ValueKind::Count, double(i % 9), "", "", {}}).accepted);
  a.start();
  ASSERT_TRUE(a.wait_until_drained(std::chrono::seconds(30))) << a.stats().last_error;
  EXPECT_EQ(a.stats().confirmed, 200u) << "confirmed by the aggregator, through the proxy";
  const auto tunnels = proxy.tunnels();
  ASSERT_FALSE(tunnels.empty()) << "the agent went around the proxy";
  for (const auto& t : tunnels) EXPECT_EQ(t, "127.0.0.1:" + std::to_string(wss_port));
  EXPECT_EQ(aggregator.get("/api/v1/stats")["events_accepted"], 200);
  a.stop();
}

TEST(UplinkProxy, AProxyThatIsNotThereOrRefusesTheTunnelIsNamedInTheError) {
  TempDir dir;
  const unsigned short ws_port = free_port();
  MosquittoBroker broker("listener " + std::to_string(ws_port) + " 127.0.0.1\nprotocol websockets");
  const std::string uri = "ws://127.0.0.1:" + std::to_string(ws_port);
  {
    const unsigned short nobody = free_port();
    auto cfg = ws_agent(uri, "ws-absent");
    cfg.uplink_proxy = "http://127.0.0.1:" + std::to_string(nobody);
    agent::Agent a(cfg, catalogue(), std::make_unique<agent::MemoryBacklog>(100), spdlog::default_logger());
    a.start();
    const std::string expect = "the proxy 127.0.0.1:" + std::to_string(nobody) + " is not reachable";
    EXPECT_TRUE(
        wait_until([&] { return a.stats().last_error.find(expect) != std::string::npos; }, std::chrono::seconds(20)))
        << a.stats().last_error;
    EXPECT_NE(a.stats().last_error.find("uplink.proxy"), std::string::npos) << a.stats().last_error;
    a.stop();
  }
  {
    HttpConnectProxy proxy({443});  // a site proxy that allows HTTPS only
    auto cfg = ws_agent(uri, "ws-refused");
    cfg.uplink_proxy = proxy.url();
    agent::Agent a(cfg, catalogue(), std::make_unique<agent::MemoryBacklog>(100), spdlog::default_logger());
    a.start();
    EXPECT_TRUE(wait_until([&] { return a.stats().last_error.find("refused a tunnel") != std::string::npos; },
                           std::chrono::seconds(20)))
        << a.stats().last_error;
    EXPECT_NE(a.stats().last_error.find("403 Forbidden"), std::string::npos) << a.stats().last_error;
    EXPECT_GE(proxy.refused(), 1u);
    EXPECT_FALSE(a.stats().connected);
    a.stop();
  }
  {
    // The same ws:// agent through a proxy that allows the port: connected, and it publishes.
    HttpConnectProxy proxy({ws_port});
    auto cfg = ws_agent(uri, "ws-allowed");
    cfg.uplink_proxy = proxy.url();
    agent::Agent a(cfg, catalogue(), std::make_unique<agent::MemoryBacklog>(100), spdlog::default_logger());
    ASSERT_TRUE(a.submit({0, 0, "drug_seizures", ValueKind::Count, 1, "", "", {}}).accepted);
    a.start();
    EXPECT_TRUE(wait_until([&] { return a.stats().sent == 1; }, std::chrono::seconds(20))) << a.stats().last_error;
    EXPECT_FALSE(proxy.tunnels().empty());
    a.stop();
  }
}
