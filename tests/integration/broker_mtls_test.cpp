// The TLS listener postwatch-broker-config writes, served by a real Mosquitto: by default mutual
// TLS where the client certificate's CN is the MQTT login (require_certificate and
// use_identity_as_username), so neither a password without a certificate, nor a certificate from
// another CA, nor one agent's certificate with another agent's password gets anywhere, and a
// certificate from the fleet CA whose CN is no login gets in but may do nothing; and the explicit
// --insecure-password-only-tls posture. Certificates are made with `openssl` at test time.
#include "support/mqtt_probe.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <mutex>
#include <set>
#include <sstream>

using namespace postwatch::test;
namespace fs = std::filesystem;

namespace {

// A fleet CA, a broker certificate for 127.0.0.1, client certificates whose CN is a login the
// generator makes (two agents, the aggregator), one from the fleet CA whose CN is no login, and
// one from an unrelated CA that claims board-1's CN.
constexpr const char* kMakeCertificates = R"(set -e
ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
openssl req -x509 $ec -keyout ca.key -out ca.pem -days 30 -subj "/CN=Postwatch Fleet Test CA"
openssl req -x509 $ec -keyout other-ca.key -out other-ca.pem -days 30 -subj "/CN=Unrelated CA"
openssl req -new $ec -keyout server.key -out server.csr -subj "/CN=127.0.0.1"
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' > server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 30 -extfile server.ext
printf 'extendedKeyUsage=clientAuth\n' > client.ext
client() {  # file, CN, issuing CA
  openssl req -new $ec -keyout "$1.key" -out "$1.csr" -subj "/O=Postwatch/OU=bamako/CN=$2"
  openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial -out "$1.pem" -days 30 \
    -extfile client.ext
}
client board-1 agent.bamako.board-1 ca
client board-2 agent.bamako.board-2 ca
client aggregator postwatch-aggregator ca
client stranger intruder ca
client impostor agent.bamako.board-1 other-ca
# Mosquitto started as root drops to its own user: its files must be readable.
chmod 644 ca.pem server.pem server.key
)";

const std::string kBoard1Events = "postwatch/v1/sub-saharan-africa/bamako/board-1/events";
const std::string kBoard2Events = "postwatch/v1/sub-saharan-africa/bamako/board-2/events";

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// What a client presents: a certificate made by the suite ("" = none) and an MQTT login.
struct Credentials {
  std::string cert;
  std::string user, password;
};

class BrokerMtls : public ::testing::Test {
 protected:
  static inline std::unique_ptr<TempDir> certs_dir;
  static fs::path certs() { return certs_dir->path(); }

  static void SetUpTestSuite() {
    certs_dir = std::make_unique<TempDir>();
    std::ofstream(certs() / "make-certificates.sh") << kMakeCertificates;
    ChildProcess make({"sh", "-c", "cd '" + certs().string() + "' && sh make-certificates.sh"},
                      certs() / "make-certificates.log");
    int rc = make.wait(std::chrono::seconds(60));
    if (rc != 0) throw std::runtime_error("making test certificates failed:\n" + make.log());
  }
  static void TearDownTestSuite() { certs_dir.reset(); }

  TempDir dir;
  fs::path out = dir.path() / "broker";
  unsigned short tls_port = free_port();
  std::string generator_output;
  std::unique_ptr<ChildProcess> broker;

  // Runs the real generator for a two-agent fleet and starts Mosquitto on what it wrote.
  void start_broker(const std::vector<std::string>& extra_args = {}) {
    std::ofstream(dir.path() / "fleet.csv") << "# post,agent\nbamako,board-1\nbamako,board-2\n";
    std::vector<std::string> args{(binary_dir() / "tools" / "broker_config" / "postwatch-broker-config").string(),
                                  "--fleet",
                                  (dir.path() / "fleet.csv").string(),
                                  "--out",
                                  out.string(),
                                  "--tls-port",
                                  std::to_string(tls_port),
                                  "--cafile",
                                  (certs() / "ca.pem").string(),
                                  "--certfile",
                                  (certs() / "server.pem").string(),
                                  "--keyfile",
                                  (certs() / "server.key").string()};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    ChildProcess gen(args, dir.path() / "gen.log");
    ASSERT_EQ(gen.wait(std::chrono::seconds(30)), 0) << gen.log();
    generator_output = gen.log();
    // Mosquitto started as root runs as its own user; in production the files belong to its
    // group. It also writes its persistence database into the output directory.
    fs::permissions(out / "passwd", fs::perms::others_read, fs::perm_options::add);
    fs::permissions(out, fs::perms::all);
    broker = std::make_unique<ChildProcess>(
        std::vector<std::string>{"mosquitto", "-c", (out / "mosquitto.conf").string()}, dir.path() / "mosquitto.log");
    ASSERT_TRUE(wait_until([&] { return port_accepts(tls_port) || !broker->running(); }, std::chrono::seconds(10)));
    ASSERT_TRUE(broker->running()) << broker->log();
  }

  std::string uri() const { return "ssl://127.0.0.1:" + std::to_string(tls_port); }
  std::string conf() const { return read_file(out / "mosquitto.conf"); }
  std::string secret(const std::string& user) {
    std::ifstream in(out / "secrets" / (user + ".password"));
    std::string s;
    std::getline(in, s);
    return s;
  }
  bool broker_logged(const std::string& text) {
    return wait_until([&] { return broker->log().find(text) != std::string::npos; }, std::chrono::seconds(10));
  }
  // The user Mosquitto logged the client in as ("New client connected … as ID (…, u'USER')").
  std::string login_of(const std::string& client_id) {
    const std::string key = " as " + client_id + " (";
    std::string line;
    wait_until(
        [&] {
          auto log = broker->log();
          auto at = log.find(key);
          if (at == std::string::npos) return false;
          line = log.substr(at, log.find('\n', at) - at);
          return true;
        },
        std::chrono::seconds(10));
    auto u = line.find("u'");
    if (u == std::string::npos) return "";
    return line.substr(u + 2, line.find('\'', u + 2) - u - 2);
  }
  // The aggregator's login (by certificate or password, per posture), reading every agent's events.
  std::unique_ptr<MqttProbe> aggregator_subscriber(const Credentials& c) {
    auto options = login(c);
    options.connect_now = true;
    options.subscribe("postwatch/v1/+/+/+/events");
    return std::make_unique<MqttProbe>(uri(), "test-aggregator", options);
  }
  // A client presenting `c` over TLS, as the agent speaks MQTT; the test connects it.
  ProbeOptions login(const Credentials& c) {
    ProbeTls tls(certs() / "ca.pem");
    if (!c.cert.empty()) {
      tls.cert = certs() / (c.cert + ".pem");
      tls.key = certs() / (c.cert + ".key");
    }
    return ProbeOptions().login(c.user, c.password).over_tls(tls).as_agent_speaks().connect_later();
  }
};

}  // namespace

TEST_F(BrokerMtls, DefaultConfigRequiresACertificateWhoseCnIsTheLogin) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  auto text = conf();
  auto listener = text.find("listener " + std::to_string(tls_port) + "\n");
  ASSERT_NE(listener, std::string::npos) << text;
  // Listener options: they must come after the listener line to apply to it.
  EXPECT_NE(text.find("\nrequire_certificate true\n", listener), std::string::npos) << text;
  EXPECT_NE(text.find("\nuse_identity_as_username true\n", listener), std::string::npos) << text;
  EXPECT_NE(generator_output.find("posture: mutual TLS on port " + std::to_string(tls_port)), std::string::npos)
      << generator_output;
  EXPECT_EQ(generator_output.find("WARNING"), std::string::npos) << generator_output;
}

TEST_F(BrokerMtls, ClientWithoutCertificateIsRefusedEvenWithTheRightPassword) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  // The login with its certificate gets in: below, the certificate is all that is missing. (The
  // refused client comes last: see AnAgentsCertificateCannotPublishAsAnotherAgent.)
  MqttProbe with_cert(uri(), "with-cert", login({"board-1", "agent.bamako.board-1", secret("agent.bamako.board-1")}));
  EXPECT_NO_THROW(with_cert.connect()) << broker->log();
  MqttProbe no_cert(uri(), "no-cert", login({"", "agent.bamako.board-1", secret("agent.bamako.board-1")}));
  EXPECT_THROW(no_cert.connect(), mqtt::exception);
  EXPECT_TRUE(broker_logged("peer did not return a certificate")) << broker->log();
}

TEST_F(BrokerMtls, CertificateFromAnotherCaIsRefused) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  // Same CN as board-1's certificate, and board-1's password: only the issuer differs.
  MqttProbe impostor(uri(), "impostor", login({"impostor", "agent.bamako.board-1", secret("agent.bamako.board-1")}));
  EXPECT_THROW(impostor.connect(), mqtt::exception);
  EXPECT_TRUE(broker_logged("certificate verify failed")) << broker->log();
  EXPECT_EQ(broker->log().find("u'agent.bamako.board-1'"), std::string::npos) << broker->log();
}

TEST_F(BrokerMtls, AgentWithItsOwnCertificatePublishesItsEvents) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  auto aggregator = aggregator_subscriber({"aggregator", "", ""});
  // No user name and no password: the certificate's CN is the login.
  MqttProbe board1(uri(), "pw-agent-bamako-board-1", login({"board-1", "", ""}));
  ASSERT_NO_THROW(board1.connect()) << broker->log();
  EXPECT_EQ(login_of("pw-agent-bamako-board-1"), "agent.bamako.board-1") << broker->log();
  board1.publish(kBoard1Events, "genuine");
  EXPECT_TRUE(wait_until([&] { return aggregator->got(kBoard1Events, "genuine"); }, std::chrono::seconds(10)))
      << broker->log();
}

TEST_F(BrokerMtls, AnAgentsCertificateCannotPublishAsAnotherAgent) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  auto aggregator = aggregator_subscriber({"aggregator", "", ""});
  // board-2's own certificate, which may write board-2's topic.
  MqttProbe board2(uri(), "pw-agent-bamako-board-2", login({"board-2", "", ""}));
  ASSERT_NO_THROW(board2.connect());
  // board-1's certificate, presenting board-2's user name and password: the broker ignores them.
  MqttProbe forger(uri(), "forger", login({"board-1", "agent.bamako.board-2", secret("agent.bamako.board-2")}));
  ASSERT_NO_THROW(forger.connect());
  EXPECT_EQ(login_of("forger"), "agent.bamako.board-1") << broker->log();
  // MQTT 3.1.1 cannot refuse a publish: Mosquitto acknowledges it and drops it. (With the
  // generated max_queued_messages 0 this Mosquitto then also closes the connection; see
  // docs/reliability.md. The test does not depend on that, and connects every client before it:
  // a Paho connect made right after another connection of this process failed or was closed
  // sometimes ended in "socket error", likely stale state of the reused socket descriptor.)
  EXPECT_NO_THROW(forger.publish(kBoard2Events, "forged"));
  // Mosquitto queues a permitted publish for its subscribers before it acknowledges it: had the
  // forged one gone through, the aggregator would get it before anything published after its PUBACK.
  board2.publish(kBoard2Events, "from-board-2");
  ASSERT_TRUE(wait_until([&] { return aggregator->got(kBoard2Events, "from-board-2"); }, std::chrono::seconds(10)))
      << broker->log();
  EXPECT_FALSE(aggregator->got(kBoard2Events, "forged"));
}

TEST_F(BrokerMtls, CertificateFromTheFleetCaWithAnUnknownCnGetsNothing) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  auto aggregator = aggregator_subscriber({"aggregator", "", ""});
  MqttProbe board1(uri(), "pw-agent-bamako-board-1", login({"board-1", "", ""}));
  ASSERT_NO_THROW(board1.connect());
  // Mosquitto lets in any certificate its cafile's CA issued: why that CA must issue only
  // fleet certificates. The ACL grants the CN 'intruder' nothing.
  MqttProbe stranger(uri(), "stranger", login({"stranger", "", ""}));
  ASSERT_NO_THROW(stranger.connect());
  EXPECT_EQ(login_of("stranger"), "intruder") << broker->log();
  EXPECT_NO_THROW(stranger.publish(kBoard1Events, "stranger"));
  // Acknowledged before board-1 sends this one: it would reach the aggregator first if let through.
  board1.publish(kBoard1Events, "genuine");
  ASSERT_TRUE(wait_until([&] { return aggregator->got(kBoard1Events, "genuine"); }, std::chrono::seconds(10)));
  EXPECT_FALSE(aggregator->got(kBoard1Events, "stranger"));
}

TEST_F(BrokerMtls, PasswordOnlyOptionAcceptsAPasswordWithoutCertificate) {
  ASSERT_NO_FATAL_FAILURE(start_broker({"--insecure-password-only-tls"}));
  EXPECT_NE(generator_output.find("WARNING: --insecure-password-only-tls"), std::string::npos) << generator_output;
  EXPECT_NE(generator_output.find("posture: INSECURE password-only TLS on port " + std::to_string(tls_port)),
            std::string::npos)
      << generator_output;
  auto text = conf();
  EXPECT_EQ(text.find("require_certificate"), std::string::npos) << text;
  EXPECT_EQ(text.find("use_identity_as_username"), std::string::npos) << text;

  auto aggregator = aggregator_subscriber({"", "postwatch-aggregator", secret("postwatch-aggregator")});
  MqttProbe board1(uri(), "pw-agent-bamako-board-1",
                   login({"", "agent.bamako.board-1", secret("agent.bamako.board-1")}));
  ASSERT_NO_THROW(board1.connect()) << broker->log();
  board1.publish(kBoard1Events, "password-only");
  EXPECT_TRUE(wait_until([&] { return aggregator->got(kBoard1Events, "password-only"); }, std::chrono::seconds(10)));
  // The password is what is checked here.
  MqttProbe wrong(uri(), "wrong-password", login({"", "agent.bamako.board-1", "not-the-password"}));
  EXPECT_THROW(wrong.connect(), mqtt::exception);
}
