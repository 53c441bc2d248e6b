#include "broker_connection.hpp"

#include "postwatch/agent/broker_route.hpp"
#include "postwatch/agent/tls_diagnostics.hpp"

#include "postwatch/mqtt_options.hpp"
#include "postwatch/secret_file.hpp"

#include <MQTTAsync.h>
#include <spdlog/spdlog.h>

#include <utility>

namespace postwatch::agent {

namespace {

// Paho initialises OpenSSL (every algorithm, every error string: 1.3 MB of resident libcrypto
// and heap) when it creates its first client, even for a plaintext broker. OpenSSL 3 initialises
// itself on first use, so told before that first client, Paho leaves it alone and a plaintext
// agent never pays for TLS it does not use. MQTTAsync_global_init also initialises Paho's
// global mutexes again, so it runs at static initialisation, before any thread or client of
// the process exists: called later (at the first agent's start) it re-initialised mutexes other
// clients of the process held (TSan: "double lock of a mutex" in a test with its own publisher).
const bool kOpensslLeftToOpenssl = [] {
  MQTTAsync_init_options init = MQTTAsync_init_options_initializer;
  init.do_openssl_init = 0;
  MQTTAsync_global_init(&init);
  return true;
}();

}  // namespace

BrokerConnection::BrokerConnection(const AgentConfig& config, std::shared_ptr<spdlog::logger> log,
                                   MessageHandler on_message, LostHandler on_lost)
    : config_(config),
      log_(std::move(log)),
      on_message_(std::move(on_message)),
      on_lost_(std::move(on_lost)),
      client_id_("pw-agent-" + config.post_id + "-" + config.agent_id),
      brokers_(config.brokers()) {
  if (!config.password_file.empty()) password_ = read_secret_file(config.password_file);
}

BrokerConnection::~BrokerConnection() = default;

// Paho C can drop a connect issued while it still tears down the lost connection
// (eclipse-paho/paho.mqtt.c#1187); its token then never completes. Seen with 142 agents in
// one process losing the broker together: dozens stuck for good in an unbounded wait.
void BrokerConnection::open() {
  client_ = std::make_unique<mqtt::async_client>(broker(), client_id_);
  // Always: fleet bundle topics may be added after the client is made (Agent::subscribe_also).
  client_->set_message_callback([this](const mqtt::const_message_ptr& m) { on_message_(m); });
  client_->set_connection_lost_handler([this](const std::string& cause) { on_lost_(cause); });
}

// Destroying a client mid-connect can block in Paho, and in-flight tokens still point into it
// (they are dropped on the next connect; the spool still has their events): the last few
// retired clients are kept and destroyed later.
void BrokerConnection::replace_client() {
  stale_clients_.push_back(std::move(client_));
  if (stale_clients_.size() > 4) stale_clients_.erase(stale_clients_.begin());
  open();
}

bool BrokerConnection::next_broker() {
  if (brokers_.size() < 2) return false;
  broker_at_ = (broker_at_ + 1) % brokers_.size();
  replace_client();
  log_->info("trying the next broker, {}", broker());
  if (++failures_in_round_ < brokers_.size()) return true;
  failures_in_round_ = 0;
  return false;
}

std::string BrokerConnection::connect(const std::string& will_topic, const std::string& will_payload) {
  try {
    // One full expression: Paho calls back into the options (the TLS error handler points at
    // this very object, copies do not re-point it) while it connects, so they must live
    // until the wait ends.
    if (!client_->connect(connect_options(will_topic, will_payload))
             ->wait_for(kConnectTimeout + std::chrono::seconds(5))) {
      replace_client();
      return "connect to " + broker() + " did not complete; retrying with a fresh MQTT client";
    }
  } catch (const mqtt::exception& e) {
    return "cannot connect to " + broker() + ": " + explain_connect_failure(e);
  }
  failures_in_round_ = 0;
  if (auto proxy = effective_proxy(broker(), config_.uplink_proxy))
    log_->info("connected to {} as {} through the proxy {} (from {})", broker(), client_id_, proxy->at.text(),
               proxy->origin);
  else
    log_->info("connected to {} as {}", broker(), client_id_);
  return "";
}

mqtt::delivery_token_ptr BrokerConnection::publish(const std::string& topic, const void* payload, std::size_t size,
                                                   int qos, bool retained) {
  return client_->publish(topic, payload, size, qos, retained);
}

bool BrokerConnection::subscribe(const std::vector<std::string>& topics) {
  auto names = std::make_shared<mqtt::string_collection>();
  for (const auto& t : topics) names->push_back(t);
  return client_->subscribe(names, std::vector<int>(names->size(), 0))->wait_for(kConnectTimeout);
}

void BrokerConnection::disconnect() {
  try {
    client_->disconnect()->wait_for(std::chrono::seconds(2));
  } catch (const mqtt::exception&) {
  }
}

void BrokerConnection::close(const std::string& state_topic, const std::string& death_payload) {
  if (client_) {
    try {
      if (client_->is_connected()) {
        try {
          client_->publish(state_topic, death_payload.data(), death_payload.size(), 1, true)
              ->wait_for(std::chrono::seconds(1));
        } catch (const mqtt::exception&) {
        }
        // Bounded: with the broker dying at the same moment the disconnect token may never
        // complete (seen in tools/soak, which stops the broker and the agents together).
        if (!client_->disconnect(std::chrono::milliseconds(500))->wait_for(std::chrono::seconds(2)))
          log_->warn("disconnect from the broker did not complete in 2 s; closing anyway");
      }
    } catch (const mqtt::exception&) {
    }
    client_.reset();
  }
  stale_clients_.clear();
}

mqtt::connect_options BrokerConnection::connect_options(const std::string& will_topic,
                                                        const std::string& will_payload) {
  auto b = mqtt::connect_options_builder()
               .clean_session(true)  // the spool, not the broker session, is what survives
               .keep_alive_interval(config_.keep_alive)
               .connect_timeout(kConnectTimeout)
               .mqtt_version(MQTTVERSION_3_1_1)  // no 3.1.1-then-3.1 retry inside one connect
               .max_inflight(static_cast<int>(config_.max_inflight_batches * 2))
               .will(mqtt::message(will_topic, will_payload, 1, true));
  set_mqtt_login(b, config_.username, password_);
  if (!config_.uplink_proxy.empty()) {
    // host:port without the scheme: Paho C 1.3.12 strips "http://" from http_proxy only, and
    // reads https_proxy (used for ssl:// and wss://) as host:port.
    std::string why;
    auto proxy = parse_proxy_url(config_.uplink_proxy, why);
    if (!proxy) throw ConfigError("uplink.proxy: " + why);
    const std::string at = proxy->text();
    if (config_.uses_tls())
      b.https_proxy(at);
    else
      b.http_proxy(at);
  }
  if (config_.uses_tls())
    set_mqtt_tls(b,
                 {.ca_file = config_.tls.ca_file,
                  .cert_file = config_.tls.cert_file,
                  .key_file = config_.tls.key_file,
                  .verify_hostname = config_.tls.verify_hostname},
                 [this](const std::string& msg) {
                   std::lock_guard lk(tls_mu_);
                   tls_error_ = msg;
                 });
  return b.finalize();
}

// Paho says "TCP/TLS connect failure" or "CONNACK return code"; this says why, with a hint.
std::string BrokerConnection::explain_connect_failure(const mqtt::exception& e) {
  std::string what = e.what();
  int rc = e.get_return_code();
  int reason = e.get_reason_code();
  // MQTT 3.1.1 CONNACK 4/5, MQTT 5 reason codes 0x86/0x87.
  if (rc == 4 || rc == 5 || reason == 0x86 || reason == 0x87) {
    return what + ": not authorised by the broker: it refused the login" +
           (config_.username.empty() ? std::string(" (no username configured)")
                                     : " of user '" + config_.username + "'") +
           "; hint: check username and the password in " +
           (config_.password_file.empty() ? std::string("password_file (not set)") : config_.password_file) +
           " against the broker's password file and ACL";
  }
  // Through a proxy, Paho's "TCP/TLS connect failure" may be the proxy or the broker behind it.
  const auto proxy = effective_proxy(broker(), config_.uplink_proxy);
  if (proxy) {
    if (auto broker_at = broker_host_port(broker())) {
      auto why = try_proxy_tunnel(proxy->at, *broker_at, std::chrono::seconds(3));
      if (!why.empty()) return what + ": " + why + " (proxy from " + proxy->origin + ")";
      if (!config_.uses_tls())
        return what + ": the proxy " + proxy->at.text() + " (from " + proxy->origin + ") opens a tunnel to " +
               broker_at->text() + ", so the broker itself refused or dropped the connection";
    }
  }
  if (!config_.uses_tls()) return what;
  std::string openssl;
  {
    std::lock_guard lk(tls_mu_);
    openssl.swap(tls_error_);
  }
  // The handshake diagnosis connects directly: behind a proxy-only network it would only say
  // the broker is unreachable.
  std::string diagnosis = proxy ? "" : diagnose_tls_handshake(broker(), config_.tls, std::chrono::seconds(3));
  if (!diagnosis.empty()) return what + ": " + diagnosis;
  if (!openssl.empty()) return what + " (TLS: " + openssl + ")";
  return what;
}

}  // namespace postwatch::agent
