// The alerting stage without an aggregator (docs/alerting.md): the notifications file's checks,
// routing and the events it names, and the outbox delivering to a real HTTP receiver on
// loopback (signature, grouping, retries while the receiver is down).
#include "alerting/alertmanager_channel.hpp"
#include "alerting/email_channel.hpp"
#include "alerting/notification_config.hpp"
#include "alerting/notification_outbox.hpp"
#include "alerting/notification_router.hpp"
#include "alerting/webhook_channel.hpp"
#include "support/test_support.hpp"
#include "support/webhook_receiver.hpp"
#include "unit/alerting_support.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <fstream>
#include <regex>

using namespace postwatch;
using namespace postwatch::aggregator;
using namespace postwatch::test;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

std::string hmac_hex(const std::string& key, const std::string& body) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(body.data()),
       body.size(), mac, &len);
  std::string hex;
  char b[3];
  for (unsigned i = 0; i < len; ++i) {
    std::snprintf(b, sizeof b, "%02x", mac[i]);
    hex += b;
  }
  return hex;
}

}  // namespace

TEST(NotificationConfig, ReadsChannelsRoutesAndSecrets) {
  ConfigDir d;
  auto cfg = d.parse(config_text("https://hooks.example.org/postwatch",
                                 R"([{"match":{"level":"red","region":["sub-saharan-africa"],"goal":[7]},
                                      "channels":["duty"],"group_wait_s":30,"repeat_interval_s":3600}])"));
  ASSERT_EQ(cfg.channels.size(), 1u);
  const auto& duty = std::get<WebhookChannelConfig>(cfg.channels[0]);
  EXPECT_EQ(duty.secret, "s3cret-key");  // one trailing newline stripped
  EXPECT_EQ(duty.transport.timeout_ms, 2000);
  ASSERT_EQ(cfg.routes.size(), 1u);
  EXPECT_EQ(cfg.routes[0].match.levels, std::vector<std::string>{"red"});
  EXPECT_EQ(cfg.routes[0].group_wait_ms, 30'000);
  EXPECT_EQ(cfg.routes[0].repeat_interval_ms, 3'600'000);
}

TEST(NotificationConfig, RefusesBadConfigsNamingFileEntryAndProblem) {
  ConfigDir d;
  const std::string route = R"([{"channels":["duty"]}])";
  struct Case {
    std::string text, expected;
  } cases[] = {
      {config_text("http://127.0.0.1:9/h", R"([{"channels":["pager"]}])"),
       "notifications file n.json: routes[0].channels: unknown channel 'pager'"},
      {config_text("ftp://example.org/h", route), "channels[0] ('duty'): url must start with http:// or https://"},
      {config_text("https:///h", route), "channels[0] ('duty'): url has no host"},
      {R"({"channels":[{"name":"duty","kind":"webhook","secret_file":"duty.secret"}],"routes":)" + route + "}",
       "channels[0] ('duty'): missing field 'url'"},
      {R"({"channels":[{"name":"duty","kind":"webhook","url":"http://h/"}],"routes":)" + route + "}",
       "channels[0] ('duty'): missing field 'secret_file'"},
      {R"({"channels":[{"kind":"webhook"}],"routes":)" + route + "}", "channels[0]: missing field 'name'"},
      {R"({"channels":[{"name":"m","kind":"pager"}],"routes":)" + route + "}",
       "channels[0] ('m'): unknown channel kind 'pager' (webhook, alertmanager or email)"},
      {config_text("http://h/", R"([{"channels":["duty"],"match":{"level":["purple"]}}])"),
       "routes[0].match.level: level must be \"amber\" or \"red\""},
      {config_text("http://h/", R"([{"channels":["duty"],"match":{"post":"atlantis"}}])"),
       "routes[0].match.post: unknown post 'atlantis'"},
      {config_text("http://h/", R"([{"channels":["duty"],"match":{"severity":"red"}}])"),
       "routes[0].match: unknown field 'severity'"},
      {config_text("http://h/", R"([{"channels":["duty"]}],"retry":{"initial_s":10,"max_s":1})"),
       "retry: 'max_s' is smaller than 'initial_s'"},
      {R"({"channels":[]})", "needs a non-empty list \"channels\""},
      {"{not json", "notifications file n.json: not valid JSON"},
  };
  for (const auto& c : cases) EXPECT_NE(d.error(c.text).find(c.expected), std::string::npos) << d.error(c.text);
}

// A config with `channel` (a JSON object) as its only channel, routed everything.
std::string one_channel(const json& channel) {
  return json{{"channels", {channel}}, {"routes", {{{"channels", {channel.value("name", "x")}}}}}}.dump();
}

TEST(NotificationConfig, ReadsAlertmanagerAndEmailChannels) {
  ConfigDir d;
  write_file(d.dir.path() / "mail.password", "p4ss\n", kOwnerOnly);
  auto cfg = d.parse(json{{"channels",
                           {{{"name", "am"}, {"type", "alertmanager"}, {"url", "http://am.example.org:9093"}},
                            {{"name", "mail"},
                             {"kind", "email"},
                             {"smtp_url", "smtp://mail.example.org:587"},
                             {"from", "postwatch@example.org"},
                             {"to", {"duty@example.org", "desk@example.org"}},
                             {"username", "postwatch"},
                             {"password_file", "mail.password"}}}},
                          {"routes", {{{"channels", {"am", "mail"}}}}},
                          {"dashboard_url", "https://postwatch.example.org/"}}
                         .dump());
  ASSERT_EQ(cfg.channels.size(), 2u);
  const auto& am = std::get<AlertmanagerChannelConfig>(cfg.channels[0]);
  EXPECT_EQ(am.resend_interval_ms, 60'000);  // the default
  EXPECT_EQ(channel_kind(cfg.channels[0]), "alertmanager");
  const auto& mail = std::get<EmailChannelConfig>(cfg.channels[1]);
  EXPECT_TRUE(mail.starttls);  // the default
  EXPECT_EQ(mail.to, (std::vector<std::string>{"duty@example.org", "desk@example.org"}));
  EXPECT_EQ(mail.transport.password, "p4ss");
  EXPECT_EQ(cfg.dashboard_url, "https://postwatch.example.org/");
}

TEST(NotificationConfig, RefusesBadAlertmanagerAndEmailChannelsNamingTheEntry) {
  ConfigDir d;
  const json am{{"name", "am"}, {"kind", "alertmanager"}, {"url", "http://am:9093"}};
  const json mail{{"name", "mail"},
                  {"kind", "email"},
                  {"smtp_url", "smtp://mail.example.org:587"},
                  {"from", "postwatch@example.org"},
                  {"to", "duty@example.org"}};
  auto with = [](json c, const std::string& field, const json& value) {
    if (value.is_null())
      c.erase(field);
    else
      c[field] = value;
    return one_channel(c);
  };
  struct Case {
    std::string text, expected;
  } cases[] = {
      {with(am, "url", nullptr), "channels[0] ('am'): missing field 'url'"},
      {with(am, "url", "am:9093"), "channels[0] ('am'): url must start with http:// or https://"},
      {with(am, "resend_interval_s", 0), "channels[0] ('am'): 'resend_interval_s' must be a number of seconds from 1"},
      {with(am, "resend_interval_s", 7200), "'resend_interval_s' must be a number of seconds from 1 to 3600"},
      {with(am, "resend_interval_s", "60"), "channels[0] ('am'): 'resend_interval_s' must be a number"},
      {with(am, "secret_file", "x"), "channels[0] ('am'): unknown field 'secret_file'"},
      {with(am, "type", "email"), "channels[0] ('am'): 'kind' and 'type' say different things"},
      {with(mail, "smtp_url", nullptr), "channels[0] ('mail'): missing field 'smtp_url'"},
      {with(mail, "smtp_url", "http://mail.example.org"), "channels[0] ('mail'): smtp_url must start with smtp://"},
      {with(mail, "from", nullptr), "channels[0] ('mail'): missing field 'from'"},
      {with(mail, "from", "postwatch"), "channels[0] ('mail').from: 'postwatch' is not an email address"},
      {with(mail, "to", nullptr), "channels[0] ('mail'): missing field 'to'"},
      {with(mail, "to", json::array()), "channels[0] ('mail'): 'to' must name at least one address"},
      {with(mail, "to", {"a@b.org", "Duty <d@b.org>"}), "channels[0] ('mail').to: 'Duty <d@b.org>' is not an email"},
      {with(mail, "tls", "ssl"), "channels[0] ('mail'): 'tls' must be \"starttls\" (the default) or \"none\""},
      {with(mail, "password_file", "duty.secret"), "channels[0] ('mail'): 'password_file' needs a 'username'"},
      {one_channel({{"name", "x"}}), "channels[0] ('x'): missing field 'kind'"},
  };
  for (const auto& c : cases) EXPECT_NE(d.error(c.text).find(c.expected), std::string::npos) << d.error(c.text);
  // A password in clear only to a relay on this machine.
  json clear = mail;
  clear["tls"] = "none";
  clear["username"] = "pw";
  clear["password_file"] = "duty.secret";
  EXPECT_NE(d.error(one_channel(clear)).find("a password would cross the network in clear"), std::string::npos);
  clear["smtp_url"] = "smtp://127.0.0.1:25";
  EXPECT_EQ(d.error(one_channel(clear)), "");
}

// Alertmanager behind basic auth (its web.config.file), and channels that trust a ministry's
// own CA: the login and the CA file are read at start; a bad one names the entry.
TEST(NotificationConfig, ReadsALoginAndACaFileAndRefusesBadOnes) {
  ConfigDir d;
  write_file(d.dir.path() / "am.password", "4m-p4ss\n", kOwnerOnly);
  write_file(d.dir.path() / "ca.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", kOwnerOnly);
  write_file(d.dir.path() / "not-a-ca.pem", "hello\n", kOwnerOnly);
  const json am{{"name", "am"},
                {"kind", "alertmanager"},
                {"url", "https://am.example.org:9093"},
                {"username", "postwatch"},
                {"password_file", "am.password"},
                {"ca_file", "ca.pem"}};
  auto cfg = d.parse(one_channel(am));
  const auto& t = std::get<AlertmanagerChannelConfig>(cfg.channels[0]).transport;
  EXPECT_EQ(t.username, "postwatch");
  EXPECT_EQ(t.password, "4m-p4ss");
  EXPECT_EQ(t.ca_file, (d.dir.path() / "ca.pem").string());  // relative to the file
  auto with = [](json c, const std::string& field, const json& value) {
    c[field] = value;
    return one_channel(c);
  };
  EXPECT_NE(d.error(with(am, "ca_file", "missing.pem")).find("channels[0] ('am'): ca_file: cannot read"),
            std::string::npos)
      << d.error(with(am, "ca_file", "missing.pem"));
  EXPECT_NE(d.error(with(am, "ca_file", "not-a-ca.pem")).find("holds no PEM certificate"), std::string::npos);
  // A basic-auth password over plain http only to this machine.
  EXPECT_NE(d.error(with(am, "url", "http://am.example.org:9093")).find("a password would cross the network in clear"),
            std::string::npos);
  EXPECT_EQ(d.error(with(am, "url", "http://127.0.0.1:9093")), "");
  json no_user = am;
  no_user.erase("username");
  EXPECT_NE(d.error(one_channel(no_user)).find("channels[0] ('am'): 'password_file' needs a 'username'"),
            std::string::npos);
  // A webhook signs instead of logging in; it may trust a CA file.
  write_file(d.dir.path() / "duty.secret", "k\n", kOwnerOnly);
  const json hook{{"name", "hook"}, {"kind", "webhook"}, {"url", "https://h/"}, {"secret_file", "duty.secret"}};
  EXPECT_EQ(d.error(with(hook, "ca_file", "ca.pem")), "");
  EXPECT_NE(d.error(with(hook, "username", "x")).find("unknown field 'username'"), std::string::npos);
  EXPECT_EQ(d.error(one_channel(am)).find("4m-p4ss"), std::string::npos);
}

TEST(NotificationConfig, RefusesAnEmailPasswordFileOthersCanReadAndNeverShowsIt) {
  ConfigDir d;
  write_file(d.dir.path() / "mail.password", "p4ssw0rd\n",
             kOwnerOnly | std::filesystem::perms::group_read | std::filesystem::perms::others_read);
  auto e = d.error(one_channel({{"name", "mail"},
                                {"kind", "email"},
                                {"smtp_url", "smtp://mail.example.org:587"},
                                {"from", "postwatch@example.org"},
                                {"to", "duty@example.org"},
                                {"username", "postwatch"},
                                {"password_file", "mail.password"}}));
  EXPECT_NE(e.find("channels[0] ('mail'): password_file:"), std::string::npos) << e;
  EXPECT_NE(e.find("chmod"), std::string::npos) << e;
  EXPECT_EQ(e.find("p4ssw0rd"), std::string::npos) << e;
}

TEST(NotificationConfig, RefusesASecretOthersCanReadAndNeverShowsIt) {
  ConfigDir d;
  write_file(d.dir.path() / "duty.secret", "s3cret-key\n",
             kOwnerOnly | std::filesystem::perms::group_read | std::filesystem::perms::others_read);
  auto e = d.error(config_text("http://h/", R"([{"channels":["duty"]}])"));
  EXPECT_NE(e.find("channels[0] ('duty'): secret_file:"), std::string::npos) << e;
  EXPECT_NE(e.find("chmod"), std::string::npos) << e;
  EXPECT_EQ(e.find("s3cret"), std::string::npos) << e;
}

TEST(NotificationConfig, LoadsFromAFileWithSecretsBesideIt) {
  ConfigDir d;
  write_file(d.dir.path() / "n.json", config_text("http://h/", R"([{"channels":["duty"]}])"), kOwnerOnly);
  EXPECT_EQ(
      std::get<WebhookChannelConfig>(NotificationConfig::load(d.dir.path() / "n.json", catalogue()).channels[0]).secret,
      "s3cret-key");
  try {
    NotificationConfig::load(d.dir.path() / "missing.json", catalogue());
    FAIL();
  } catch (const NotificationConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("missing.json: cannot open it"), std::string::npos) << e.what();
  }
}

TEST(NotificationRouter, AnAmberOnlyRouteDoesNotGetARed) {
  ConfigDir d;
  NotificationRouter r(d.parse(config_text("http://h/", R"([{"match":{"level":"amber"},"channels":["duty"]}])")));
  EXPECT_TRUE(r.on_alarm(goal_alarm(1, 7, "red"), 0).empty());
  auto amber = r.on_alarm(goal_alarm(2, 7, "amber"), 0);
  ASSERT_EQ(amber.size(), 1u);
  EXPECT_EQ(amber[0].body["event"], "raised");
  EXPECT_EQ(amber[0].channel, "duty");
}

// An alarm restored at start whose clearance the last run already stored (the alarm store had not
// committed it before a SIGKILL): when the board clears it again, nothing more is said.
TEST(NotificationRouter, ARestoredAlarmWhoseClearanceWasToldIsNotClearedTwice) {
  ConfigDir d;
  NotificationRouter r(d.parse(config_text("http://h/", R"([{"channels":["duty"]}])")));
  auto open = goal_alarm(1, 7, "red"), open2 = goal_alarm(2, 5, "red");
  r.remember(open, 0, /*told_cleared=*/true);
  r.remember(open2, 0);
  auto cleared = open, cleared2 = open2;
  cleared.open = cleared2.open = false;
  EXPECT_TRUE(r.on_alarm(cleared, 1000).empty());
  auto told = r.on_alarm(cleared2, 1000);  // its clearance was not told: it is now
  ASSERT_EQ(told.size(), 1u);
  EXPECT_EQ(told[0].body["event"], "cleared");
}

TEST(NotificationRouter, PostAndRegionMatchersSelectTheAlarmsOfTheirPosts) {
  ConfigDir d;
  NotificationRouter r(d.parse(config_text("http://h/", R"([{"match":{"post":"bamako"},"channels":["duty"]},
    {"match":{"region":"europe","kind":"post_silent"},"channels":["duty"]}])")));
  EXPECT_EQ(r.on_alarm(goal_alarm(1, 7, "red", "bamako"), 0).size(), 1u);
  EXPECT_TRUE(r.on_alarm(goal_alarm(2, 7, "red", "kyiv"), 0).empty());
  auto silent = goal_alarm(3, 7, "amber", "kyiv");
  silent.kind = "post_silent";
  const std::string region = catalogue().find_post("kyiv")->region;
  EXPECT_EQ(r.on_alarm(silent, 0).size(), region == "europe" ? 1u : 0u) << region;
  AlarmMatcher m;
  m.regions = {region};
  EXPECT_TRUE(route_matches(m, silent));
  m.regions = {catalogue().find_post("bamako")->region};
  EXPECT_FALSE(route_matches(m, silent));
}

TEST(NotificationRouter, NamesEachChangeAndRemindsWhileOpenAndUnacknowledged) {
  ConfigDir d;
  NotificationRouter r(d.parse(config_text("http://h/", R"([{"channels":["duty"],"repeat_interval_s":60}])")));
  auto a = goal_alarm(1, 7, "amber");
  EXPECT_EQ(r.on_alarm(a, 0).at(0).body["event"], "raised");
  a.level = "red";
  EXPECT_EQ(r.on_alarm(a, 1000).at(0).body["event"], "escalated");
  EXPECT_TRUE(r.on_alarm(a, 2000).empty());  // nothing a person needs to hear
  EXPECT_TRUE(r.due_reminders(60'000).empty());
  EXPECT_EQ(r.due_reminders(61'000).at(0).body["event"], "repeat");
  EXPECT_TRUE(r.due_reminders(62'000).empty());
  a.acknowledged = true;
  EXPECT_EQ(r.on_alarm(a, 70'000).at(0).body["event"], "acknowledged");
  EXPECT_TRUE(r.due_reminders(200'000).empty());
  a.open = false;
  EXPECT_EQ(r.on_alarm(a, 210'000).at(0).body["event"], "cleared");
  // A follower (notify false) learns the alarm, so as leader it does not raise it again.
  auto b = goal_alarm(2, 7, "red");
  EXPECT_TRUE(r.on_alarm(b, 0, false).empty());
  EXPECT_TRUE(r.on_alarm(b, 10).empty());
}

TEST(NotificationOutbox, BackoffDoublesUpToTheCap) {
  OutboxTiming t{1000, 300'000, 600'000};
  EXPECT_EQ(NotificationOutbox::backoff_ms(1, t), 1000);
  EXPECT_EQ(NotificationOutbox::backoff_ms(2, t), 2000);
  EXPECT_EQ(NotificationOutbox::backoff_ms(4, t), 8000);
  EXPECT_EQ(NotificationOutbox::backoff_ms(30, t), 300'000);
}

// The outbox with the real webhook channel and a real receiver on loopback.
struct OutboxWithReceiver : ::testing::Test {
  WebhookReceiver receiver;
  ConfigDir d;
  NotificationConfig config;
  std::unique_ptr<NotificationOutbox> outbox;
  void open(const std::string& routes) {
    config = d.parse(config_text(receiver.url(), routes) + "");
    config.retry_initial_ms = 50;
    config.retry_max_ms = 200;
    auto channel = std::make_shared<WebhookChannel>(std::get<WebhookChannelConfig>(config.channels[0]));
    outbox = std::make_unique<NotificationOutbox>(
        d.dir.path() / "notifications.sqlite",
        std::map<std::string, DeliverFn>{
            {"duty", [channel](const std::string& body, std::int64_t now) { return channel->deliver(body, now); }}},
        OutboxTiming{config.retry_initial_ms, config.retry_max_ms, 600'000}, quiet_log());
  }
};

TEST_F(OutboxWithReceiver, ARedAlarmArrivesSignedWithTheChannelSecret) {
  open(R"([{"match":{"level":"red"},"channels":["duty"]}])");
  NotificationRouter router(config);
  for (auto& e : router.on_alarm(goal_alarm(5, 7, "red"), 0)) outbox->enqueue(std::move(e));
  ASSERT_TRUE(wait_until([&] { return receiver.received().size() == 1; }, 5s));
  auto got = receiver.received()[0];
  EXPECT_EQ(got.signature, "sha256=" + hmac_hex("s3cret-key", got.body));
  EXPECT_EQ(hmac_sha256_hex("s3cret-key", got.body), hmac_hex("s3cret-key", got.body));
  EXPECT_NEAR(std::stoll(got.timestamp), std::time(nullptr), 5);
  auto j = got.json();
  EXPECT_EQ(j["alarms"].size(), 1u);
  EXPECT_EQ(j["alarms"][0]["id"], 5);
  EXPECT_EQ(j["alarms"][0]["event"], "raised");
  EXPECT_TRUE(j["notification_id"].is_string());
  EXPECT_TRUE(wait_until([&] { return outbox->figures().delivered == 1 && outbox->figures().pending == 0; }, 2s));
}

TEST_F(OutboxWithReceiver, AlarmsWithinTheGroupWaitGoInOneNotification) {
  open(R"([{"channels":["duty"],"group_wait_s":0.5}])");
  NotificationRouter router(config);
  for (auto& e : router.on_alarm(goal_alarm(1, 7, "red"), 0)) outbox->enqueue(std::move(e));
  for (auto& e : router.on_alarm(goal_alarm(2, 3, "amber"), 0)) outbox->enqueue(std::move(e));
  ASSERT_TRUE(wait_until([&] { return !receiver.received().empty(); }, 5s));
  ASSERT_TRUE(wait_until([&] { return outbox->figures().pending == 0; }, 2s));
  ASSERT_EQ(receiver.received().size(), 1u);
  auto alarms = receiver.received()[0].json()["alarms"];
  ASSERT_EQ(alarms.size(), 2u);
  EXPECT_EQ(alarms[0]["id"], 1);
  EXPECT_EQ(alarms[1]["id"], 2);
}

TEST_F(OutboxWithReceiver, AReceiverThatWasDownGetsEveryNotificationAlsoAfterAReopen) {
  receiver.stop();
  open(R"([{"channels":["duty"]}])");
  NotificationRouter router(config);
  for (std::uint64_t id = 1; id <= 3; ++id)
    for (auto& e : router.on_alarm(goal_alarm(id, 7, "red"), 0)) outbox->enqueue(std::move(e));
  ASSERT_TRUE(wait_until([&] { return outbox->figures().failed_attempts >= 3 && outbox->figures().pending == 3; }, 5s));
  outbox.reset();  // as a restart would: what is pending is in the file
  open(R"([{"channels":["duty"]}])");
  EXPECT_EQ(outbox->figures().pending, 3u);
  receiver.start();
  ASSERT_TRUE(wait_until([&] { return outbox->figures().pending == 0; }, 5s));
  auto changes = receiver.alarm_changes();
  ASSERT_EQ(changes.size(), 3u);
  std::set<std::string> ids;
  for (const auto& c : changes) ids.insert(c["notification_id"].get<std::string>());
  EXPECT_EQ(ids.size(), 3u);
}

namespace {

// A config with an Alertmanager channel "am" (re-sends every 10 s) for every alarm.
NotificationConfig alertmanager_config(ConfigDir& d) {
  return d.parse(one_channel(
      {{"name", "am"}, {"kind", "alertmanager"}, {"url", "http://127.0.0.1:9/"}, {"resend_interval_s", 10}}));
}

std::set<std::uint64_t> ids_in(const json& list) {
  std::set<std::uint64_t> out;
  for (const auto& c : list) out.insert(c["id"].get<std::uint64_t>());
  return out;
}

}  // namespace

TEST(NotificationRouter, ReSendsOpenAlarmsToAlertmanagerUntilTheyCloseAcknowledgedOrNot) {
  ConfigDir d;
  NotificationRouter r(alertmanager_config(d));
  auto a = goal_alarm(1, 7, "red");
  auto b = goal_alarm(2, 3, "amber");
  auto raised = r.on_alarm(a, 0);
  ASSERT_EQ(raised.size(), 1u);
  EXPECT_EQ(raised[0].body["facts"]["pillar"], "defend");  // routing's facts, for the labels
  EXPECT_FALSE(raised[0].supersedes);
  r.on_alarm(b, 0);
  EXPECT_TRUE(r.due_reminders(0).empty());  // the first re-send is one interval away
  EXPECT_TRUE(r.due_reminders(9'000).empty());
  auto resend = r.due_reminders(10'000);
  ASSERT_EQ(resend.size(), 1u);  // one notification for the channel, with both alarms
  EXPECT_TRUE(resend[0].supersedes);
  EXPECT_EQ(resend[0].group_key, "am/resend");
  EXPECT_EQ(ids_in(resend[0].body), (std::set<std::uint64_t>{1, 2}));
  EXPECT_EQ(resend[0].body[0]["event"], "resend");
  // Acknowledged: Alertmanager still needs to hear of it, or it resolves the alert.
  a.acknowledged = true;
  r.on_alarm(a, 15'000);
  EXPECT_EQ(ids_in(r.due_reminders(20'000).at(0).body), (std::set<std::uint64_t>{1, 2}));
  // A clearance is followed at once by a fresh re-send without it, superseding any older one.
  b.open = false;
  auto cleared = r.on_alarm(b, 21'000);
  ASSERT_EQ(cleared.size(), 2u);
  EXPECT_EQ(cleared[0].body["event"], "cleared");
  EXPECT_TRUE(cleared[1].supersedes);
  EXPECT_EQ(ids_in(cleared[1].body), (std::set<std::uint64_t>{1}));
  EXPECT_TRUE(r.due_reminders(30'000).empty());  // counted from the clearance's re-send
  EXPECT_EQ(ids_in(r.due_reminders(31'000).at(0).body), (std::set<std::uint64_t>{1}));
  a.open = false;
  r.on_alarm(a, 32'000);
  EXPECT_TRUE(r.due_reminders(100'000).empty());  // nothing open: nothing to re-send
}

TEST(NotificationOutbox, AReSendReplacesTheChannelsPendingReSendWhileTheReceiverIsDown) {
  ConfigDir d;
  std::atomic<bool> up{false};
  std::mutex m;
  std::vector<json> got;
  auto outbox = std::make_unique<NotificationOutbox>(
      d.dir.path() / "notifications.sqlite",
      std::map<std::string, DeliverFn>{{"am",
                                        [&](const std::string& body, std::int64_t) {
                                          if (!up) return DeliveryResult{false, "down"};
                                          std::lock_guard lock(m);
                                          got.push_back(json::parse(body));
                                          return DeliveryResult{true, ""};
                                        }}},
      OutboxTiming{50, 100, 600'000}, quiet_log());
  NotificationRouter r(alertmanager_config(d));
  for (auto& e : r.on_alarm(goal_alarm(1, 7, "red"), 0)) outbox->enqueue(std::move(e));
  EXPECT_TRUE(r.due_reminders(0).empty());
  for (std::int64_t t = 10'000; t <= 50'000; t += 10'000) {
    auto due = r.due_reminders(t);
    ASSERT_EQ(due.size(), 1u);
    const auto failed = outbox->figures().failed_attempts;
    outbox->enqueue(std::move(due[0]));
    // The worker stores what was handed over before each attempt: two more attempts and it is in.
    ASSERT_TRUE(wait_until([&] { return outbox->figures().failed_attempts >= failed + 2; }, 5s));
  }
  // The raised notification and one re-send, not five.
  EXPECT_EQ(outbox->figures().pending, 2u);
  up = true;
  ASSERT_TRUE(wait_until([&] { return outbox->figures().pending == 0; }, 5s));
  std::lock_guard lock(m);
  ASSERT_EQ(got.size(), 2u);
  std::multiset<std::string> events;
  for (const auto& n : got)
    for (const auto& c : n["alarms"]) events.insert(c["event"].get<std::string>());
  EXPECT_EQ(events, (std::multiset<std::string>{"raised", "resend"}));
}

// Alertmanager's postableAlerts (its api/v2/openapi.yaml): an array of objects with labels
// (required) and annotations (maps of string to string), startsAt and endsAt (date-time),
// generatorURL (uri), and nothing else.
void expect_postable_alerts(const json& alerts) {
  static const std::regex label_name("[a-zA-Z_][a-zA-Z0-9_]*");
  static const std::regex date_time(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d))");
  ASSERT_TRUE(alerts.is_array()) << alerts.dump();
  for (const auto& a : alerts) {
    ASSERT_TRUE(a.is_object()) << a.dump();
    for (const auto& [key, value] : a.items()) {
      EXPECT_TRUE(key == "labels" || key == "annotations" || key == "startsAt" || key == "endsAt" ||
                  key == "generatorURL")
          << key;
      if (key == "labels" || key == "annotations") {
        ASSERT_TRUE(value.is_object()) << key;
        for (const auto& [name, v] : value.items()) {
          EXPECT_TRUE(v.is_string()) << name << " " << v.dump();
          if (key == "labels") {
            EXPECT_TRUE(std::regex_match(name, label_name)) << name;
          }
        }
      } else if (key == "generatorURL") {
        EXPECT_TRUE(value.is_string() && value.get<std::string>().starts_with("http")) << value.dump();
      } else {
        EXPECT_TRUE(value.is_string() && std::regex_match(value.get<std::string>(), date_time)) << value.dump();
      }
    }
    ASSERT_TRUE(a.contains("labels")) << a.dump();
    EXPECT_FALSE(a["labels"].empty());
  }
}

TEST(AlertmanagerAlerts, TheBodyHasThePostableAlertsFieldsAndStableLabels) {
  ConfigDir d;
  NotificationRouter r(alertmanager_config(d));
  auto a = goal_alarm(17, 7, "amber");
  a.alarm["raised_at_ms"] = 1'718'000'000'000;
  a.alarm["cleared_at_ms"] = nullptr;
  a.alarm["causes"] =
      json::array({{{"post", "bamako"}, {"indicator", "terrorism_threat_level"}, {"value", 4}, {"status", "amber"}}});
  auto raised = alertmanager_alerts(json::array({r.on_alarm(a, 0).at(0).body}), "https://pw.example.org/", 0);
  expect_postable_alerts(raised);
  ASSERT_EQ(raised.size(), 1u);
  EXPECT_EQ(raised[0]["labels"], (json{{"alertname", "postwatch_goal"},
                                       {"severity", "amber"},
                                       {"alarm_id", "17"},
                                       {"goal", "7"},
                                       {"pillar", "defend"}}));
  EXPECT_EQ(raised[0]["startsAt"], "2024-06-10T06:13:20.000Z");
  EXPECT_FALSE(raised[0].contains("endsAt"));
  EXPECT_EQ(raised[0]["generatorURL"], "https://pw.example.org/");
  EXPECT_EQ(raised[0]["annotations"]["summary"], "AMBER goal alarm: goal 7 (defend)");
  EXPECT_EQ(raised[0]["annotations"]["description"], "bamako: terrorism_threat_level = 4 (amber)\n");
  // Escalated: the amber alert ends now and the red one fires.
  a.level = "red";
  a.alarm["level"] = "red";
  const std::int64_t now = 1'718'000'060'000;
  auto escalated = alertmanager_alerts(json::array({r.on_alarm(a, 1).at(0).body}), "", now);
  expect_postable_alerts(escalated);
  ASSERT_EQ(escalated.size(), 2u);
  EXPECT_EQ(escalated[0]["labels"]["severity"], "amber");
  EXPECT_EQ(escalated[0]["endsAt"], "2024-06-10T06:14:20.000Z");
  EXPECT_EQ(escalated[1]["labels"]["severity"], "red");
  EXPECT_FALSE(escalated[1].contains("endsAt"));
  EXPECT_FALSE(escalated[1].contains("generatorURL"));  // no dashboard_url
  // Cleared: it ends at its clearance.
  a.open = false;
  a.alarm["state"] = "cleared";
  a.alarm["cleared_at_ms"] = 1'718'000'120'000;
  auto cleared = alertmanager_alerts(json::array({r.on_alarm(a, 2).at(0).body}), "", now);
  expect_postable_alerts(cleared);
  ASSERT_EQ(cleared.size(), 1u);
  EXPECT_EQ(cleared[0]["labels"], escalated[1]["labels"]);  // the same alert
  EXPECT_EQ(cleared[0]["endsAt"], "2024-06-10T06:15:20.000Z");
  // A post alarm: its post and region instead of goal and pillar.
  auto silent = goal_alarm(18, 7, "red", "kyiv");
  silent.kind = "post_silent";
  silent.pillar.clear();
  silent.alarm = {{"id", 18}, {"kind", "post_silent"}, {"post", "kyiv"}, {"level", "red"}, {"state", "open"}};
  auto post = alertmanager_alerts(json::array({r.on_alarm(silent, 3).at(0).body}), "", now);
  expect_postable_alerts(post);
  EXPECT_EQ(post[0]["labels"]["post"], "kyiv");
  EXPECT_EQ(post[0]["labels"]["region"], catalogue().find_post("kyiv")->region);
  EXPECT_FALSE(post[0]["labels"].contains("goal"));
}

TEST(EmailMessage, HasRfc5322HeadersASubjectNamingTheAlarmAndItsFacts) {
  ConfigDir d;
  auto cfg = d.parse(one_channel({{"name", "mail"},
                                  {"kind", "email"},
                                  {"smtp_url", "smtp://127.0.0.1:25"},
                                  {"tls", "none"},
                                  {"from", "postwatch@example.org"},
                                  {"to", {"duty@example.org", "desk@example.org"}}}));
  NotificationRouter r(cfg);
  auto a = goal_alarm(17, 7, "red");
  a.alarm["raised_at_ms"] = 1'718'000'000'000;
  a.alarm["causes"] =
      json::array({{{"post", "bamako"}, {"indicator", "terrorism_threat_level"}, {"value", 5}, {"status", "red"}}});
  json notification{{"notification_id", "3f9a61c07d2e4b18-42"},
                    {"attempt", 2},
                    {"alarms", json::array({r.on_alarm(a, 0).at(0).body})}};
  auto m = email_message(notification, std::get<EmailChannelConfig>(cfg.channels[0]), "https://pw.example.org/",
                         1'718'000'005'000);
  auto headers = m.substr(0, m.find("\r\n\r\n") + 2);
  EXPECT_NE(headers.find("Date: Mon, 10 Jun 2024 06:13:25 +0000\r\n"), std::string::npos) << headers;
  EXPECT_NE(headers.find("From: postwatch@example.org\r\n"), std::string::npos) << headers;
  EXPECT_NE(headers.find("To: duty@example.org, desk@example.org\r\n"), std::string::npos) << headers;
  EXPECT_NE(headers.find("Subject: [Postwatch] RED goal alarm raised: goal 7 (defend) at bamako\r\n"),
            std::string::npos)
      << headers;
  EXPECT_NE(headers.find("Message-ID: <3f9a61c07d2e4b18-42@example.org>\r\n"), std::string::npos) << headers;
  auto body = m.substr(headers.size() + 2);
  EXPECT_NE(body.find("bamako: terrorism_threat_level = 5 (red)"), std::string::npos) << body;
  EXPECT_NE(body.find("Raised:    Mon, 10 Jun 2024 06:13:20 +0000"), std::string::npos) << body;
  EXPECT_NE(body.find("Dashboard: https://pw.example.org/"), std::string::npos) << body;
  EXPECT_EQ(m.find('\n'), m.find("\r\n") + 1);  // CRLF line ends
  EXPECT_EQ(std::count(m.begin(), m.end(), '\n'), std::count(m.begin(), m.end(), '\r'));
}

TEST(EmailChannel, StarttlsRefusesAServerWithoutIt) {
  // aiosmtpd without a certificate offers no STARTTLS: with "tls": "starttls" nothing is sent
  // in clear; the attempt fails and the outbox retries.
  TempDir dir;
  const auto port = free_port();
  ChildProcess smtp({"/usr/bin/python3", "-m", "aiosmtpd", "-n", "-l", "127.0.0.1:" + std::to_string(port), "-c",
                     "aiosmtpd.handlers.Mailbox", (dir.path() / "maildir").string()},
                    dir.path() / "smtp.log");
  ASSERT_TRUE(wait_until([&] { return port_accepts(port); }, 20s)) << smtp.log();
  EmailChannelConfig c;
  c.name = "mail";
  c.smtp_url = "smtp://127.0.0.1:" + std::to_string(port);
  c.from = "postwatch@example.org";
  c.to = {"duty@example.org"};
  c.transport.timeout_ms = 5000;
  auto body = json{{"notification_id", "t-1"}, {"alarms", json::array()}}.dump();
  auto refused = EmailChannel(c, "").deliver(body, 0);
  EXPECT_FALSE(refused.ok);
  EXPECT_NE(refused.error.find("SMTP"), std::string::npos) << refused.error;
  c.starttls = false;
  auto sent = EmailChannel(c, "").deliver(body, 0);
  EXPECT_TRUE(sent.ok) << sent.error;
  EXPECT_TRUE(wait_until(
      [&] {
        return std::filesystem::exists(dir.path() / "maildir" / "new") &&
               !std::filesystem::is_empty(dir.path() / "maildir" / "new");
      },
      5s));
}
