// The alerting stage without an aggregator (docs/alerting.md): the notifications file's checks,
// routing and the events it names, and the outbox delivering to a real HTTP receiver on
// loopback (signature, grouping, retries while the receiver is down).
#include "alerting/notification_config.hpp"
#include "alerting/notification_outbox.hpp"
#include "alerting/notification_router.hpp"
#include "alerting/webhook_channel.hpp"
#include "support/test_support.hpp"
#include "support/webhook_receiver.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <fstream>

using namespace postwatch;
using namespace postwatch::aggregator;
using namespace postwatch::test;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

const IndicatorCatalogue& catalogue() {
  static const IndicatorCatalogue c = IndicatorCatalogue::load(catalogue_path());
  return c;
}

void write_file(const std::filesystem::path& p, const std::string& text, std::filesystem::perms mode) {
  std::ofstream(p) << text;
  std::filesystem::permissions(p, mode);
}
constexpr auto kOwnerOnly = std::filesystem::perms::owner_read | std::filesystem::perms::owner_write;

// A config with one webhook channel "duty" at `url`, its secret in dir/duty.secret, and `routes`.
std::string config_text(const std::string& url, const std::string& routes) {
  return R"({"channels":[{"name":"duty","kind":"webhook","url":")" + url +
         R"(","secret_file":"duty.secret","timeout_s":2}],"routes":)" + routes + "}";
}

struct ConfigDir {
  TempDir dir;
  ConfigDir() { write_file(dir.path() / "duty.secret", "s3cret-key\n", kOwnerOnly); }
  NotificationConfig parse(const std::string& text) {
    return NotificationConfig::parse(text, "notifications file n.json", dir.path(), catalogue());
  }
  std::string error(const std::string& text) {
    try {
      parse(text);
    } catch (const NotificationConfigError& e) {
      return e.what();
    }
    return "";
  }
};

AlarmNotice goal_alarm(std::uint64_t id, int goal, const std::string& level, const std::string& post = "bamako") {
  const Post* p = catalogue().find_post(post);
  AlarmNotice a{id, "goal", level, goal, catalogue().find_goal(goal)->pillar, {post}, {p->region}, true, false, {}};
  a.alarm = {{"id", id}, {"kind", "goal"}, {"goal", goal}, {"level", level}, {"state", "open"}};
  return a;
}

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

std::shared_ptr<spdlog::logger> quiet_log() {
  return std::make_shared<spdlog::logger>("alerting-test", std::make_shared<spdlog::sinks::null_sink_mt>());
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
  EXPECT_EQ(duty.timeout_ms, 2000);
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
