// The Alertmanager and email channels through the real postwatch-aggregator, against the real
// servers (docs/alerting.md): Debian's prometheus-alertmanager on a loopback port, with a
// storage dir and config of its own and clustering off; and aiosmtpd (python3-aiosmtpd) as
// the SMTP server, writing each message it takes to a maildir.
#include "support/aggregator_process.hpp"
#include "support/feed_http.hpp"
#include "support/mqtt_probe.hpp"
#include "support/self_signed_cert.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <sstream>

using namespace postwatch;
using namespace postwatch::test;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

// The login of an Alertmanager behind basic auth: its web.config.file holds the bcrypt hash
// (cost 4, made with Python's crypt) of kAmPassword.
constexpr const char* kAmUser = "postwatch";
constexpr const char* kAmPassword = "am-test-pass";
constexpr const char* kAmHash = "$2b$04$KSdPccKJrVYdHoCztcGOkuuWT1nm7yQPSW6wpiR9oDDkP4xmTIBea";
constexpr const char* kAmBasic = "Basic cG9zdHdhdGNoOmFtLXRlc3QtcGFzcw==";  // postwatch:am-test-pass

// Alertmanager on 127.0.0.1:<free port>, stopped on destruction; with `basic_auth`, every
// request needs kAmUser's login.
class Alertmanager {
 public:
  explicit Alertmanager(bool basic_auth = false) : port_(free_port()), basic_auth_(basic_auth) {
    std::ofstream(dir_.path() / "alertmanager.yml") << "route:\n  receiver: nobody\n  group_wait: 1s\n"
                                                       "receivers:\n  - name: nobody\n";
    std::vector<std::string> args{
        "/usr/bin/prometheus-alertmanager", "--config.file=" + (dir_.path() / "alertmanager.yml").string(),
        "--storage.path=" + (dir_.path() / "data").string(), "--web.listen-address=127.0.0.1:" + std::to_string(port_),
        "--cluster.listen-address="};
    if (basic_auth) {
      std::ofstream(dir_.path() / "web.yml") << "basic_auth_users:\n  " << kAmUser << ": " << kAmHash << "\n";
      args.push_back("--web.config.file=" + (dir_.path() / "web.yml").string());
    }
    proc_ = std::make_unique<ChildProcess>(args, dir_.path() / "alertmanager.log");
    if (!wait_until([&] { return get("/-/ready").status == 200 || !proc_->running(); }, 20s) || !proc_->running())
      throw std::runtime_error("alertmanager did not become ready:\n" + proc_->log());
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  // The alerts Alertmanager holds as active or suppressed (resolved ones are not listed).
  json alerts() {
    auto r = get("/api/v2/alerts");
    return r.status == 200 ? json::parse(r.body, nullptr, false) : json::array();
  }
  HttpReply get(const std::string& target, bool with_login = true) {
    std::map<std::string, std::string> headers;
    if (basic_auth_ && with_login) headers["Authorization"] = kAmBasic;
    return http_call(port_, feedhttp::verb::get, target, headers);
  }
  std::string log() const { return proc_->log(); }

 private:
  TempDir dir_;
  unsigned short port_;
  bool basic_auth_;
  std::unique_ptr<ChildProcess> proc_;
};

// aiosmtpd on 127.0.0.1:<port>, its Mailbox handler writing each message to <dir>/maildir.
// With a certificate it offers STARTTLS and takes no mail without it.
class SmtpServer {
 public:
  explicit SmtpServer(const SelfSignedCert* tls = nullptr) : port_(free_port()), tls_(tls) { start(); }
  void start() {
    std::vector<std::string> args{
        "/usr/bin/python3", "-m", "aiosmtpd", "-n", "-l", "127.0.0.1:" + std::to_string(port_)};
    if (tls_) args.insert(args.end(), {"--tlscert", tls_->cert.string(), "--tlskey", tls_->key.string()});
    args.insert(args.end(), {"-c", "aiosmtpd.handlers.Mailbox", (dir_.path() / "maildir").string()});
    proc_ = std::make_unique<ChildProcess>(args, dir_.path() / "smtp.log");
    if (!wait_until([&] { return port_accepts(port_) || !proc_->running(); }, 20s) || !proc_->running())
      throw std::runtime_error("aiosmtpd did not start:\n" + proc_->log());
  }
  void stop() { proc_.reset(); }  // SIGKILL: the port refuses connections
  std::string url() const { return "smtp://127.0.0.1:" + std::to_string(port_); }
  // Every message taken so far, as its text (headers and body).
  std::vector<std::string> messages() const {
    std::vector<std::string> out;
    auto dir = dir_.path() / "maildir" / "new";
    if (!std::filesystem::exists(dir)) return out;
    for (const auto& f : std::filesystem::directory_iterator(dir)) {
      std::stringstream text;
      text << std::ifstream(f.path()).rdbuf();
      out.push_back(text.str());
    }
    return out;
  }

 private:
  TempDir dir_;
  unsigned short port_;
  const SelfSignedCert* tls_;
  std::unique_ptr<ChildProcess> proc_;
};

// dir/notifications.json with one channel (`channel`, a JSON object) for red goal alarms of
// sub-saharan-africa; retries start at 100 ms.
std::string write_config(const TempDir& dir, const json& channel) {
  auto file = dir.path() / "notifications.json";
  json config{
      {"channels", json::array({channel})},
      {"routes", json::array({{{"match", {{"kind", "goal"}, {"level", "red"}, {"region", "sub-saharan-africa"}}},
                               {"channels", {channel["name"]}}}})},
      {"retry", {{"initial_s", 0.1}, {"max_s", 0.5}}},
      {"dashboard_url", "https://postwatch.example.org/"}};
  std::ofstream(file) << config.dump(2);
  return file.string();
}

// Bamako reports terrorism threat `level` (5: goal 7 turns red and a goal alarm opens; 1: it
// clears), and goal 7 becomes `want`. One publisher per test: its seq numbers go on.
void make_goal7(MqttProbe& pub, AggregatorProcess& aggregator, double level, const std::string& want) {
  pub.publish_event("sub-saharan-africa", "bamako", "terrorism_threat_level", level);
  ASSERT_TRUE(wait_until([&] { return aggregator.goal_status(7) == want; }, 10s)) << aggregator.goal_status(7);
}

json goal7_alert(Alertmanager& am) {
  for (const auto& a : am.alerts())
    if (a["labels"].value("alertname", "") == "postwatch_goal" && a["labels"].value("goal", "") == "7") return a;
  return nullptr;
}

bool has_header(const std::string& message, const std::string& line) {
  return message.find(line + "\n") != std::string::npos || message.find(line + "\r\n") != std::string::npos;
}

}  // namespace

TEST(AlertmanagerChannel, ARedAlarmIsActiveInAlertmanagerAndResolvedWhenCleared) {
  MosquittoBroker broker;
  TempDir dir;
  Alertmanager am;
  auto config = write_config(
      dir, {{"name", "prometheus"}, {"kind", "alertmanager"}, {"url", am.url()}, {"resend_interval_s", 1}});
  AggregatorProcess aggregator(broker, dir, {"--notifications", config});
  MqttProbe pub(broker.uri(), "alerting-channels-publisher");
  make_goal7(pub, aggregator, 5, "red");
  json alert;
  ASSERT_TRUE(wait_until([&] { return !(alert = goal7_alert(am)).is_null(); }, 10s))
      << aggregator.process().log() << am.log();
  EXPECT_EQ(alert["status"]["state"], "active") << alert.dump();
  const json& labels = alert["labels"];
  EXPECT_EQ(labels["severity"], "red");
  EXPECT_EQ(labels["pillar"], "defend") << labels.dump();
  EXPECT_FALSE(labels.value("alarm_id", "").empty());
  EXPECT_EQ(alert["generatorURL"], "https://postwatch.example.org/");
  EXPECT_NE(alert["annotations"].value("summary", "").find("RED goal alarm: goal 7"), std::string::npos);
  EXPECT_NE(alert["annotations"].value("posts", "").find("bamako"), std::string::npos);
  // Re-sent each second while open: Alertmanager's updatedAt moves on.
  const auto first_update = alert["updatedAt"].get<std::string>();
  EXPECT_TRUE(wait_until([&] { return goal7_alert(am).value("updatedAt", first_update) != first_update; }, 5s));

  make_goal7(pub, aggregator, 1, "green");
  EXPECT_TRUE(wait_until([&] { return goal7_alert(am).is_null(); }, 10s)) << goal7_alert(am).dump();
  // Stays resolved: no later re-send brings it back.
  ASSERT_TRUE(wait_until([&] { return aggregator.get("/api/v1/stats").value("notifications_pending", 1) == 0; }, 5s));
  auto delivered = aggregator.get("/api/v1/stats").value("notifications_delivered", 0);
  EXPECT_FALSE(wait_until([&] { return !goal7_alert(am).is_null(); }, 2500ms));
  EXPECT_EQ(aggregator.get("/api/v1/stats").value("notifications_delivered", 0), delivered);
}

TEST(EmailChannel, ARedAlarmArrivesBySmtpWithinADeadline) {
  MosquittoBroker broker;
  TempDir dir;
  SmtpServer smtp;
  auto config = write_config(dir, {{"name", "duty-mail"},
                                   {"kind", "email"},
                                   {"smtp_url", smtp.url()},
                                   {"tls", "none"},
                                   {"from", "postwatch@example.org"},
                                   {"to", {"duty@example.org", "desk@example.org"}}});
  AggregatorProcess aggregator(broker, dir, {"--notifications", config});
  MqttProbe pub(broker.uri(), "alerting-channels-publisher");
  make_goal7(pub, aggregator, 5, "red");
  ASSERT_TRUE(wait_until([&] { return !smtp.messages().empty(); }, 10s)) << aggregator.process().log();
  auto m = smtp.messages()[0];
  EXPECT_TRUE(has_header(m, "Subject: [Postwatch] RED goal alarm raised: goal 7 (defend) at bamako")) << m;
  EXPECT_TRUE(has_header(m, "From: postwatch@example.org")) << m;
  EXPECT_TRUE(has_header(m, "To: duty@example.org, desk@example.org")) << m;
  // The envelope's recipients, as aiosmtpd saw them.
  EXPECT_TRUE(has_header(m, "X-RcptTo: duty@example.org, desk@example.org")) << m;
  EXPECT_NE(m.find("bamako: terrorism_threat_level = 5"), std::string::npos) << m;
  EXPECT_NE(m.find("Dashboard: https://postwatch.example.org/"), std::string::npos) << m;
}

TEST(EmailChannel, AnSmtpServerThatWasDownGetsTheMailWhenBack) {
  MosquittoBroker broker;
  TempDir dir;
  SmtpServer smtp;
  smtp.stop();
  auto config = write_config(dir, {{"name", "duty-mail"},
                                   {"kind", "email"},
                                   {"smtp_url", smtp.url()},
                                   {"tls", "none"},
                                   {"from", "postwatch@example.org"},
                                   {"to", "duty@example.org"}});
  AggregatorProcess aggregator(broker, dir, {"--notifications", config});
  MqttProbe pub(broker.uri(), "alerting-channels-publisher");
  make_goal7(pub, aggregator, 5, "red");
  ASSERT_TRUE(wait_until(
      [&] {
        auto s = aggregator.get("/api/v1/stats");
        return s.value("notifications_pending", 0) == 1 && s.value("notifications_failed_attempts", 0) >= 3;
      },
      10s))
      << aggregator.process().log();
  smtp.start();
  ASSERT_TRUE(wait_until([&] { return !smtp.messages().empty(); }, 10s)) << aggregator.process().log();
  ASSERT_TRUE(wait_until([&] { return aggregator.get("/api/v1/stats").value("notifications_pending", 1) == 0; }, 5s));
  ASSERT_EQ(smtp.messages().size(), 1u);
  EXPECT_TRUE(has_header(smtp.messages()[0], "Subject: [Postwatch] RED goal alarm raised: goal 7 (defend) at bamako"))
      << smtp.messages()[0];
}

// The first run knows a wrong password: Alertmanager answers 401, which is logged, counted and
// retried, never dropped. Restarted with the right one, the same notification gets in.
TEST(AlertmanagerChannel, BehindBasicAuthAWrongLoginIsRetriedAndTheRightOneGetsIn) {
  MosquittoBroker broker;
  TempDir dir;
  Alertmanager am(true);
  ASSERT_EQ(am.get("/api/v2/alerts", false).status, 401);  // the login is really needed
  auto password = dir.path() / "am.password";
  auto set_password = [&](const std::string& p) {
    std::ofstream(password, std::ios::trunc) << p << "\n";
    std::filesystem::permissions(password, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  };
  set_password("not-the-password");
  auto config = write_config(dir, {{"name", "prometheus"},
                                   {"kind", "alertmanager"},
                                   {"url", am.url()},
                                   {"username", kAmUser},
                                   {"password_file", "am.password"}});
  {
    AggregatorProcess aggregator(broker, dir, {"--notifications", config}, "am-auth");
    MqttProbe pub(broker.uri(), "alerting-channels-publisher");
    make_goal7(pub, aggregator, 5, "red");
    ASSERT_TRUE(wait_until(
        [&] {
          auto s = aggregator.get("/api/v1/stats");
          return s.value("notifications_pending", 0) >= 1 && s.value("notifications_failed_attempts", 0) >= 2;
        },
        10s))
        << aggregator.process().log();
    EXPECT_NE(aggregator.process().log().find("HTTP 401"), std::string::npos) << aggregator.process().log();
    EXPECT_EQ(aggregator.process().log().find("not-the-password"), std::string::npos);
    EXPECT_TRUE(goal7_alert(am).is_null());
    aggregator.process().signal(SIGTERM);
    ASSERT_EQ(aggregator.process().wait(10s), 0) << aggregator.process().log();
  }
  set_password(kAmPassword);
  AggregatorProcess aggregator(broker, dir, {"--notifications", config}, "am-auth");
  json alert;
  ASSERT_TRUE(wait_until([&] { return !(alert = goal7_alert(am)).is_null(); }, 10s))
      << aggregator.process().log() << am.log();
  EXPECT_EQ(alert["status"]["state"], "active") << alert.dump();
  EXPECT_EQ(aggregator.process().log().find(kAmPassword), std::string::npos);
}

// STARTTLS that succeeds: aiosmtpd offers it with a self-signed certificate and takes no mail
// in clear. Without the certificate as its ca_file the aggregator refuses the server (a failed
// attempt, kept); with it the mail arrives over TLS.
TEST(EmailChannel, StartTlsToAServerTrustedThroughItsCaFileDeliversTheMail) {
  MosquittoBroker broker;
  TempDir dir, cert_dir;
  SelfSignedCert cert(cert_dir);
  SmtpServer smtp(&cert);
  json channel{{"name", "duty-mail"},
               {"kind", "email"},
               {"smtp_url", smtp.url()},
               {"from", "postwatch@example.org"},
               {"to", "duty@example.org"}};  // "tls": "starttls" is the default
  {
    AggregatorProcess aggregator(broker, dir, {"--notifications", write_config(dir, channel)}, "smtp-tls");
    MqttProbe pub(broker.uri(), "alerting-channels-publisher");
    make_goal7(pub, aggregator, 5, "red");
    ASSERT_TRUE(
        wait_until([&] { return aggregator.get("/api/v1/stats").value("notifications_failed_attempts", 0) >= 2; }, 10s))
        << aggregator.process().log();
    EXPECT_TRUE(smtp.messages().empty());
    EXPECT_NE(aggregator.process().log().find("SMTP: SSL peer certificate"), std::string::npos)
        << aggregator.process().log();
    aggregator.process().signal(SIGTERM);
    ASSERT_EQ(aggregator.process().wait(10s), 0) << aggregator.process().log();
  }
  channel["ca_file"] = cert.cert.string();
  AggregatorProcess aggregator(broker, dir, {"--notifications", write_config(dir, channel)}, "smtp-tls");
  ASSERT_TRUE(wait_until([&] { return !smtp.messages().empty(); }, 10s)) << aggregator.process().log();
  ASSERT_TRUE(wait_until([&] { return aggregator.get("/api/v1/stats").value("notifications_pending", 1) == 0; }, 5s));
  const auto m = smtp.messages()[0];
  EXPECT_TRUE(has_header(m, "Subject: [Postwatch] RED goal alarm raised: goal 7 (defend) at bamako")) << m;
  EXPECT_TRUE(has_header(m, "X-RcptTo: duty@example.org")) << m;
}
