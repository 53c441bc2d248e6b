// The agent over TLS against a real Mosquitto: mutual TLS with a password, and the failures an
// operator meets on a real board (untrusted or expired broker certificate, wrong password, no
// client certificate, a password file others can read), each with a clear message; plus
// `--check-config` reporting every problem, and the `run --fifo` input the systemd unit uses.
// Certificates are made with `openssl` at test time.
#include "postwatch/agent/agent.hpp"
#include "postwatch/agent/spool_store.hpp"
#include "postwatch/wire_codec.hpp"
#include "support/captured_log.hpp"
#include "support/mqtt_probe.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <sys/stat.h>

#include <csignal>
#include <fstream>
#include <mutex>
#include <sstream>

using namespace postwatch;
using namespace postwatch::test;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr const char* kUser = "bamako-gw-1";
constexpr const char* kPassword = "s3cret-pw";

// A CA, a broker certificate for 127.0.0.1/localhost, a client certificate, an unrelated CA
// and an expired broker certificate (made with `openssl ca` and a validity in the past).
constexpr const char* kMakeCertificates = R"(set -e
ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
openssl req -x509 $ec -keyout ca.key -out ca.pem -days 30 -subj "/CN=Postwatch Test CA"
openssl req -x509 $ec -keyout other-ca.key -out other-ca.pem -days 30 -subj "/CN=Unrelated CA"
openssl req -new $ec -keyout server.key -out server.csr -subj "/CN=127.0.0.1"
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' > server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 30 -extfile server.ext
openssl req -new $ec -keyout client.key -out client.csr -subj "/CN=bamako-gw-1"
printf 'extendedKeyUsage=clientAuth\n' > client.ext
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 30 -extfile client.ext
mkdir -p ca-db && : > ca-db/index.txt && echo 1000 > ca-db/serial
cat > ca.cnf <<'EOF'
[ca]
default_ca = test_ca
[test_ca]
dir = ca-db
database = $dir/index.txt
new_certs_dir = $dir
serial = $dir/serial
default_md = sha256
policy = any
unique_subject = no
[any]
commonName = supplied
[server_ext]
subjectAltName = IP:127.0.0.1,DNS:localhost
extendedKeyUsage = serverAuth
EOF
openssl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key -in server.csr -out expired.pem \
  -startdate 20200101000000Z -enddate 20200201000000Z -extensions server_ext -notext
mosquitto_passwd -b -c broker.passwd bamako-gw-1 s3cret-pw
# Mosquitto drops root for its own user: its files must be readable. The agent's secrets are not.
chmod 644 ca.pem server.pem server.key expired.pem broker.passwd
chmod 600 client.key
printf 's3cret-pw\n' > agent.password && chmod 600 agent.password
printf 'wrong-pw\n' > wrong.password && chmod 600 wrong.password
)";

std::shared_ptr<const IndicatorCatalogue> catalogue() {
  static auto c = std::make_shared<const IndicatorCatalogue>(IndicatorCatalogue::load(catalogue_path()));
  return c;
}

std::string agent_bin() { return (binary_dir() / "agent" / "postwatch-agent").string(); }

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A plain-TCP subscriber on the broker's second listener: what reached the broker.
ProbeOptions subscriber_login() {
  return ProbeOptions().login(kUser, kPassword).subscribe("postwatch/v1/+/bamako/gw-1/#");
}

class AgentTls : public ::testing::Test {
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
  unsigned short tls_port = free_port();
  unsigned short expired_port = free_port();
  // Plain listener (the helper's) for the test's subscriber; a mutual-TLS listener with a good
  // certificate; a TLS listener with an expired certificate. Everyone needs a password.
  MosquittoBroker broker{"allow_anonymous false\npassword_file " + (certs() / "broker.passwd").string() +
                         "\nlistener " + std::to_string(tls_port) + " 127.0.0.1\ncafile " +
                         (certs() / "ca.pem").string() + "\ncertfile " + (certs() / "server.pem").string() +
                         "\nkeyfile " + (certs() / "server.key").string() + "\nrequire_certificate true\nlistener " +
                         std::to_string(expired_port) + " 127.0.0.1\ncafile " + (certs() / "ca.pem").string() +
                         "\ncertfile " + (certs() / "expired.pem").string() + "\nkeyfile " +
                         (certs() / "server.key").string() + "\n"};
  std::shared_ptr<postwatch::test::CapturedLog> log_text_sink = std::make_shared<postwatch::test::CapturedLog>();
  postwatch::test::CapturedLog& log_text = *log_text_sink;
  std::shared_ptr<spdlog::logger> log = std::make_shared<spdlog::logger>("agent", log_text_sink);

  void SetUp() override {
    ASSERT_TRUE(
        wait_until([&] { return port_accepts(tls_port) && port_accepts(expired_port); }, std::chrono::seconds(10)))
        << broker.log();
  }

  std::string tls_uri(unsigned short port) const { return "ssl://127.0.0.1:" + std::to_string(port); }

  // A config file for the good listener with mutual TLS and a password; `edit` changes it.
  fs::path write_config(const std::function<void(json&)>& edit = {}) {
    json j{{"broker_uri", tls_uri(tls_port)},
           {"agent_id", "gw-1"},
           {"post_id", "bamako"},
           {"username", kUser},
           {"password_file", (certs() / "agent.password").string()},
           {"tls",
            {{"ca_file", (certs() / "ca.pem").string()},
             {"cert_file", (certs() / "client.pem").string()},
             {"key_file", (certs() / "client.key").string()}}},
           {"catalogue_file", catalogue_path().string()},
           {"spool", {{"dir", (dir.path() / "spool").string()}, {"fsync", "never"}}},
           {"batch", {{"max_delay_ms", 10}}},
           {"delivery", {{"confirm", "broker"}}},  // no aggregator here: the broker's PUBACK releases
           {"keep_alive_s", 5}};
    if (edit) edit(j);
    auto file = dir.path() / "agent.json";
    std::ofstream(file) << j.dump(2);
    return file;
  }

  agent::AgentConfig config(const std::function<void(json&)>& edit = {}) {
    return agent::AgentConfig::load(write_config(edit));
  }

  std::unique_ptr<agent::Agent> make_agent(const agent::AgentConfig& cfg) {
    return std::make_unique<agent::Agent>(cfg, catalogue(), std::make_unique<agent::SpoolStore>(cfg.spool, log), log);
  }

  static IndicatorEvent level_event(int value) {
    return IndicatorEvent{0, 1700000000000, "terrorism_threat_level", ValueKind::Level, double(value), "", "", {}};
  }

  // Starts an agent that must not get through, waits for the log line, checks nothing was sent.
  std::string expect_refused(const agent::AgentConfig& cfg, const std::string& expected) {
    auto agent = make_agent(cfg);
    EXPECT_TRUE(agent->submit(level_event(3)).accepted);
    agent->start();
    bool logged =
        wait_until([&] { return log_text.str().find(expected) != std::string::npos; }, std::chrono::seconds(20));
    EXPECT_TRUE(logged) << "expected '" << expected << "' in the agent log:\n" << log_text.str();
    auto s = agent->stats();
    EXPECT_FALSE(s.connected);
    EXPECT_EQ(s.sent, 0u);
    EXPECT_EQ(s.backlog.events, 1u) << "the event stays in the spool";
    EXPECT_NE(s.last_error.find(expected), std::string::npos) << s.last_error;
    agent->stop();
    return log_text.str();
  }
};

}  // namespace

TEST_F(AgentTls, MutualTlsWithPasswordDeliversTheEvent) {
  MqttProbe sub(broker.uri(), "pw-test-subscriber", subscriber_login());
  auto cfg = write_config();
  ChildProcess emit({agent_bin(), "emit", "--config", cfg.string(), "--indicator", "terrorism_threat_level", "--value",
                     "4", "--note", "over TLS"},
                    dir.path() / "emit.log");
  ASSERT_EQ(emit.wait(std::chrono::seconds(30)), 0) << emit.log() << "\nbroker:\n" << broker.log();
  EXPECT_NE(emit.log().find("sent seq 1 to postwatch/v1/sub-saharan-africa/bamako/gw-1/events"), std::string::npos)
      << emit.log();
  ASSERT_TRUE(wait_until([&] { return !sub.events().empty(); }, std::chrono::seconds(10)));
  auto events = sub.events();
  EXPECT_EQ(events.front().indicator, "terrorism_threat_level");
  EXPECT_EQ(events.front().number, 4);
  EXPECT_EQ(events.front().note, "over TLS");
  // The password never reaches the log.
  EXPECT_EQ(emit.log().find(kPassword), std::string::npos);
}

TEST_F(AgentTls, InProcessAgentConnectsByHostNameToo) {
  // "localhost" is in the certificate's subjectAltName: host name verification passes.
  auto cfg = config([&](json& j) { j["broker_uri"] = "ssl://localhost:" + std::to_string(tls_port); });
  EXPECT_TRUE(cfg.tls.verify_hostname);
  auto agent = make_agent(cfg);
  ASSERT_TRUE(agent->submit(level_event(2)).accepted);
  agent->start();
  ASSERT_TRUE(agent->wait_until_drained(std::chrono::seconds(20))) << log_text.str();
  EXPECT_EQ(log_text.str().find(kPassword), std::string::npos);
}

TEST_F(AgentTls, UntrustedBrokerCertificateIsReportedAndEventStaysSpooled) {
  auto cfg = config([&](json& j) { j["tls"]["ca_file"] = (certs() / "other-ca.pem").string(); });
  auto text = expect_refused(cfg, "the broker's certificate was not trusted");
  EXPECT_NE(text.find("hint: tls.ca_file (" + (certs() / "other-ca.pem").string() + ") must hold the CA"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("issued by /CN=Postwatch Test CA"), std::string::npos) << text;
}

TEST_F(AgentTls, ExpiredBrokerCertificateIsRefused) {
  auto cfg = config([&](json& j) { j["broker_uri"] = tls_uri(expired_port); });
  auto text = expect_refused(cfg, "the broker's certificate has expired");
  EXPECT_NE(text.find("not valid after 2020-02-01"), std::string::npos) << text;
}

TEST_F(AgentTls, WrongPasswordIsNotAuthorised) {
  auto cfg = config([&](json& j) { j["password_file"] = (certs() / "wrong.password").string(); });
  auto text = expect_refused(cfg, "not authorised");
  EXPECT_NE(text.find("user '" + std::string(kUser) + "'"), std::string::npos) << text;
  EXPECT_NE(text.find((certs() / "wrong.password").string()), std::string::npos) << text;
  EXPECT_EQ(text.find("wrong-pw"), std::string::npos) << "the password must never be logged";
}

TEST_F(AgentTls, MissingClientCertificateIsExplained) {
  auto cfg = config([&](json& j) {
    j["tls"].erase("cert_file");
    j["tls"].erase("key_file");
  });
  expect_refused(cfg, "the broker requires a client certificate");
}

TEST_F(AgentTls, WorldReadablePasswordFileIsAConfigError) {
  auto secret = dir.path() / "readable.password";
  std::ofstream(secret) << kPassword << "\n";
  fs::permissions(secret,
                  fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read | fs::perms::others_read);
  auto file = write_config([&](json& j) { j["password_file"] = secret.string(); });
  std::string expected = secret.string() + " is readable by group and others (mode 0644)";

  ChildProcess check({agent_bin(), "--check-config", file.string()}, dir.path() / "check.log");
  EXPECT_EQ(check.wait(std::chrono::seconds(20)), 2) << check.log();
  EXPECT_NE(check.log().find(file.string() + ": password_file: " + expected), std::string::npos) << check.log();

  ChildProcess run({agent_bin(), "run", "--config", file.string(), "--input", "/dev/null"}, dir.path() / "run.log");
  EXPECT_EQ(run.wait(std::chrono::seconds(20)), 2) << run.log();
  EXPECT_NE(run.log().find("config error: " + file.string() + ": password_file: " + expected), std::string::npos)
      << run.log();
  EXPECT_EQ(run.log().find(kPassword), std::string::npos);

  // The library refuses it too.
  EXPECT_THROW(make_agent(agent::AgentConfig::load(file)), agent::ConfigError);
  // Group-readable alone is refused as well; owner-only is fine.
  fs::permissions(secret, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
  EXPECT_NE(agent::secret_file_exposure(secret).find("readable by group (mode 0640)"), std::string::npos);
  fs::permissions(secret, fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_EQ(agent::read_secret_file(secret), kPassword);  // trailing newline stripped
}

TEST_F(AgentTls, CheckConfigPrintsEveryProblemWithItsLocation) {
  auto not_a_dir = dir.path() / "plain-file";
  std::ofstream(not_a_dir) << "x";
  auto readable_key = dir.path() / "readable.key";
  fs::copy_file(certs() / "client.key", readable_key);
  fs::permissions(readable_key, fs::perms::owner_read | fs::perms::owner_write | fs::perms::others_read);
  auto file = write_config([&](json& j) {
    j["post_id"] = "atlantis";
    j["colour"] = "blue";
    j["tls"]["verify_host"] = false;         // a typo of verify_hostname
    j["tls"]["ca_file"] = "missing-ca.pem";  // relative to the config file
    j["tls"]["key_file"] = readable_key.string();
    j["batch"]["max_wait_ms"] = 5;  // a typo of max_delay_ms
    j["batch"]["max_events"] = 0;
    j["spool"]["dir"] = (not_a_dir / "spool").string();
    j["password_file"] = (dir.path() / "no-such.password").string();
  });
  ChildProcess check({agent_bin(), "--check-config", file.string()}, dir.path() / "check.log");
  ASSERT_EQ(check.wait(std::chrono::seconds(20)), 2) << check.log();
  auto out = check.log();
  auto f = file.string() + ": ";
  for (std::string expected : {
           f + "colour: unknown setting",
           f + "tls.verify_host: unknown setting (known here: enabled, ca_file, cert_file, key_file, verify_hostname)",
           f + "batch.max_wait_ms: unknown setting (known here: max_events, max_delay_ms, max_inflight)",
           f + "batch.max_events: must be between 1 and 10000",
           f + "post_id: 'atlantis' is not a post in the catalogue",
           f + "tls.ca_file: cannot read " + (dir.path() / "missing-ca.pem").string() + ": No such file or directory",
           f + "tls.key_file: " + readable_key.string() + " is readable by others (mode 0604)",
           f + "password_file: cannot read " + (dir.path() / "no-such.password").string(),
           f + "spool.dir: " + (not_a_dir / "spool").string() + " cannot be created: " + not_a_dir.string() +
               " is not a directory",
           f + "9 error(s)",
       })
    EXPECT_NE(out.find(expected), std::string::npos) << "missing: " << expected << "\nin:\n" << out;

  // The library gives the same list; load() still throws, naming the problems in the file.
  auto check_result = agent::AgentConfig::validate(file);
  EXPECT_EQ(check_result.errors(), 9u) << check_result.describe_all();
  try {
    agent::AgentConfig::load(file);
    ADD_FAILURE() << "load accepted a bad file";
  } catch (const agent::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("tls.verify_host: unknown setting"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("batch.max_wait_ms: unknown setting"), std::string::npos);
  }
}

TEST_F(AgentTls, CheckConfigAcceptsAGoodFileAndEnforcesTheTlsRules) {
  auto good = write_config();
  ChildProcess ok({agent_bin(), "--check-config", good.string()}, dir.path() / "ok.log");
  ASSERT_EQ(ok.wait(std::chrono::seconds(20)), 0) << ok.log();
  EXPECT_NE(ok.log().find(good.string() + ": ok (agent gw-1, post bamako"), std::string::npos) << ok.log();
  EXPECT_NE(ok.log().find("with TLS"), std::string::npos) << ok.log();

  auto problems = [&](const std::function<void(json&)>& edit) {
    return agent::AgentConfig::validate(write_config(edit)).describe_all();
  };
  EXPECT_NE(problems([](json& j) { j.erase("tls"); }).find("tls: broker_uri ssl://"), std::string::npos);
  EXPECT_EQ(problems([&](json& j) { j["broker_uri"] = "mqtts://127.0.0.1:" + std::to_string(tls_port); }), "");
  EXPECT_NE(problems([](json& j) {
              j["broker_uri"] = "tcp://127.0.0.1:1883";
            }).find("broker_uri: plaintext tcp://127.0.0.1:1883 needs \"allow_plaintext\": true"),
            std::string::npos);
  EXPECT_NE(problems([](json& j) {
              j["broker_uri"] = "tcp://127.0.0.1:1883";
              j["allow_plaintext"] = true;
            }).find("tls: a tls section is set but broker_uri tcp://127.0.0.1:1883 is plaintext"),
            std::string::npos);
  EXPECT_NE(problems([](json& j) { j.erase("username"); }).find("password_file: is set without username"),
            std::string::npos);
  EXPECT_NE(problems([&](json& j) {
              j["tls"]["cert_file"] = (certs() / "server.pem").string();
            }).find("does not belong to the certificate in"),
            std::string::npos);
  EXPECT_NE(problems([&](json& j) {
              j["tls"]["cert_file"] = (certs() / "expired.pem").string();
            }).find("warning: tls.cert_file: client certificate /CN=127.0.0.1 expired on 2020-02-01"),
            std::string::npos);
  // An ssl:// agent without a tls section is refused by the library too.
  agent::AgentConfig no_tls;
  no_tls.broker_uri = tls_uri(tls_port);
  no_tls.agent_id = "gw-1";
  no_tls.post_id = "bamako";
  no_tls.spool.dir = dir.path() / "spool-no-tls";
  EXPECT_THROW(make_agent(no_tls), agent::ConfigError);
}

// `run --fifo PATH`, as the systemd unit runs the agent: sources open the FIFO, write lines and
// close it; the agent keeps reading until SIGTERM, then exits 0.
TEST_F(AgentTls, RunReadsAFifoAcrossWritersUntilSigterm) {
  MqttProbe sub(broker.uri(), "pw-test-subscriber", subscriber_login());
  auto cfg = write_config();
  auto fifo = dir.path() / "events.fifo";
  ChildProcess run({agent_bin(), "run", "--config", cfg.string(), "--fifo", fifo.string()}, dir.path() / "run.log");
  ASSERT_TRUE(wait_until(
      [&] {
        struct stat st {};
        return (::stat(fifo.c_str(), &st) == 0 && S_ISFIFO(st.st_mode)) || !run.running();
      },
      std::chrono::seconds(10)));
  ASSERT_TRUE(run.running()) << run.log();
  struct stat st {};
  ASSERT_EQ(::stat(fifo.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0620u);
  for (int writer = 0; writer < 3; ++writer) {  // each writer opens, writes, closes
    std::ofstream out(fifo);
    out << json{{"indicator", "terrorism_threat_level"}, {"value", writer + 1}}.dump() << "\n";
  }
  ASSERT_TRUE(wait_until([&] { return sub.events().size() >= 3; }, std::chrono::seconds(20))) << run.log();
  EXPECT_TRUE(run.running()) << "the agent must outlive its writers\n" << run.log();
  EXPECT_NE(run.log().find("TLS to " + tls_uri(tls_port)), std::string::npos) << run.log();
  run.signal(SIGTERM);
  EXPECT_EQ(run.wait(std::chrono::seconds(20)), 0) << run.log();
  auto status = json::parse(read_file(dir.path() / "spool" / "status.json"));
  EXPECT_EQ(status["events_sent"], 3);
}
