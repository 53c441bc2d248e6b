// The API contract, against the real aggregator and a real Mosquitto with data in: every
// documented GET path's answers (successes and the errors that can be provoked) validated
// against the OpenAPI description the binary serves, closed-world, by tests/tools/openapi_check.py
// (python3-jsonschema); and /metrics through `promtool check metrics` (package prometheus).
// tools/bootstrap installs both; when either is missing the tests fail and say so.
#include "postwatch/clock.hpp"
#include "postwatch/topics.hpp"
#include "support/aggregator_process.hpp"
#include "support/feed_http.hpp"
#include "support/mqtt_probe.hpp"
#include "support/nats_cluster.hpp"
#include "support/stream_client.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

using namespace postwatch;
using namespace postwatch::test;
using nlohmann::json;
using verb = boost::beast::http::verb;

namespace {

const std::filesystem::path kSourceDir = postwatch::test::source_dir();

// The checker made all `requests` and found nothing wrong, in the spec or in the answers.
bool all_passed(const CommandResult& r, std::size_t requests) {
  return r.status == 0 &&
         r.output.find(std::to_string(requests) + " requests, 0 spec problems, 0 failed") != std::string::npos;
}

// `name` found on PATH, or empty.
std::string find_program(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    auto candidate = std::filesystem::path(dir.empty() ? "." : dir) / name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
  }
  return "";
}

// The interpreter whose modules tools/bootstrap installs (python3-jsonschema), else python3 on PATH.
std::string python() { return ::access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3"; }

const std::string kChecker = (kSourceDir / "tests" / "tools" / "openapi_check.py").string();

// One request for the checker (see openapi_check.py's --cases).
json get_case(const std::string& path, int status) { return json{{"path", path}, {"status", status}}; }
json with(json c, const std::string& key, json value) {
  c[key] = std::move(value);
  return c;
}
json without_token(const std::string& path, int status) { return with(get_case(path, status), "token", nullptr); }
json upgrade(const std::string& path, int status) { return with(get_case(path, status), "websocket", true); }
json revalidated(const std::string& path) { return with(get_case(path, 304), "revalidate", true); }
// Asked for once the broker is gone and the stream is full (the fixture's second run).
json later(json c) { return with(std::move(c), "later", true); }

// What each documented GET path is asked, so that each documented answer is provoked; the
// names (bamako/gw-1, paris/skewed, goal 7) are the data put_data_in() sends. Every path that
// documents 401 is also asked without a token, and every path that documents 413 with 17 KiB
// of headers (added by the test, not listed here).
std::map<std::string, std::vector<json>> case_table() {
  return {
      {"/healthz", {get_case("/healthz", 200)}},
      {"/readyz", {get_case("/readyz", 200), later(get_case("/readyz", 503))}},
      {"/metrics", {get_case("/metrics", 200)}},
      {"/", {get_case("/", 200), revalidated("/")}},
      {"/dashboard", {get_case("/dashboard", 200), revalidated("/dashboard")}},
      {"/api/v1/openapi.json", {get_case("/api/v1/openapi.json", 200), revalidated("/api/v1/openapi.json")}},
      {"/api/v1/whoami",
       {get_case("/api/v1/whoami", 200), with(get_case("/api/v1/whoami", 200), "token", TokensFile::kOperator),
        with(get_case("/api/v1/whoami", 401), "token", "not-a-token-of-ours-0000")}},
      {"/api/v1/goals", {get_case("/api/v1/goals", 200)}},
      {"/api/v1/pillars", {get_case("/api/v1/pillars", 200)}},
      {"/api/v1/goals/{id}",
       {get_case("/api/v1/goals/7", 200), get_case("/api/v1/goals/4", 200), get_case("/api/v1/goals/abc", 400),
        get_case("/api/v1/goals/99", 404)}},
      {"/api/v1/goals/{id}/progress",
       {get_case("/api/v1/goals/5/progress", 200),
        get_case("/api/v1/goals/3/progress?from=2019-01-01&at=2021-01-01", 200),
        get_case("/api/v1/goals/7/progress", 200), get_case("/api/v1/goals/abc/progress", 400),
        get_case("/api/v1/goals/5/progress?at=soon", 400), get_case("/api/v1/goals/99/progress", 404)}},
      {"/api/v1/targets",
       {get_case("/api/v1/targets", 200), get_case("/api/v1/targets?at=2020-04-17", 200),
        get_case("/api/v1/targets?from=2021-01-01&at=2020-01-01", 400)}},
      {"/api/v1/report",
       {get_case("/api/v1/report?from=2019-01-01&to=2021-01-01", 200),
        get_case("/api/v1/report?from=2019-01-01&to=2021-01-01&format=csv", 200),
        get_case("/api/v1/report?format=pdf", 400)}},
      {"/api/v1/threats", {get_case("/api/v1/threats", 200)}},
      {"/api/v1/regions",
       {get_case("/api/v1/regions", 200), get_case("/api/v1/regions?goal=7", 200),
        get_case("/api/v1/regions?goal=seven", 400), get_case("/api/v1/regions?goal=99", 404)}},
      {"/api/v1/posts",
       {get_case("/api/v1/posts", 200), get_case("/api/v1/posts?region=sub-saharan-africa&goal=7", 200),
        get_case("/api/v1/posts?format=csv", 200), get_case("/api/v1/posts?format=xml", 400),
        get_case("/api/v1/posts?region=atlantis", 404)}},
      {"/api/v1/posts/{id}",
       {get_case("/api/v1/posts/bamako", 200), get_case("/api/v1/posts/paris", 200),
        get_case("/api/v1/posts/oslo", 200), get_case("/api/v1/posts/atlantis", 404)}},
      {"/api/v1/posts/{id}/events",
       {get_case("/api/v1/posts/bamako/events", 200), get_case("/api/v1/posts/paris/events", 200),
        get_case("/api/v1/posts/bamako/events?format=csv", 200),
        get_case("/api/v1/posts/bamako/events?indicator=situation_note&limit=5", 200),
        get_case("/api/v1/posts/bamako/events?limit=0", 400), get_case("/api/v1/posts/bamako/events?from=x", 400),
        get_case("/api/v1/posts/atlantis/events", 404), get_case("/api/v1/posts/bamako/events?indicator=nope", 404)}},
      {"/api/v1/agents", {get_case("/api/v1/agents", 200)}},
      {"/api/v1/agents/{post}/{agent}",
       {get_case("/api/v1/agents/bamako/gw-1", 200), get_case("/api/v1/agents/paris/skewed", 200),
        get_case("/api/v1/agents/bamako/nobody", 404)}},
      {"/api/v1/stats", {get_case("/api/v1/stats", 200)}},
      {"/api/v1/agent-keys", {get_case("/api/v1/agent-keys", 200)}},
      {"/api/v1/aggregator-key", {get_case("/api/v1/aggregator-key", 200)}},
      {"/api/v1/alarms",
       {get_case("/api/v1/alarms", 200), get_case("/api/v1/alarms?state=open", 200),
        get_case("/api/v1/alarms?state=cleared", 200), get_case("/api/v1/alarms?state=bogus", 400)}},
      {"/api/v1/silences",
       {get_case("/api/v1/silences", 200), get_case("/api/v1/silences?state=active", 200),
        get_case("/api/v1/silences?state=expired", 200), get_case("/api/v1/silences?state=bogus", 400)}},
      {"/api/v1/rollouts", {get_case("/api/v1/rollouts", 200)}},
      {"/api/v1/rollouts/{id}", {get_case("/api/v1/rollouts/1", 404), get_case("/api/v1/rollouts/one", 400)}},
      {"/api/v1/commands", {get_case("/api/v1/commands", 200)}},
      {"/api/v1/commands/{id}", {get_case("/api/v1/commands/c1", 404)}},
      {"/api/v1/history",
       {get_case("/api/v1/history?scope=goal&id=7", 200), get_case("/api/v1/history?scope=pillar&id=defend", 200),
        get_case("/api/v1/history?scope=goal&id=7&format=csv", 200),
        get_case("/api/v1/history?scope=post&id=bamako", 400),
        get_case("/api/v1/history?scope=goal&id=7&from=2000&to=1000", 400),
        get_case("/api/v1/history?scope=goal&id=99", 404)}},
      {"/api/v1/stream",
       {upgrade("/api/v1/stream", 101),
        with(upgrade(std::string("/api/v1/stream?token=") + TokensFile::kRead, 101), "token", nullptr),
        with(upgrade("/api/v1/stream", 401), "token", nullptr),
        with(upgrade("/api/v1/stream", 403), "headers", json{{"Origin", "http://elsewhere.example"}}),
        get_case("/api/v1/stream", 426), later(upgrade("/api/v1/stream", 503))}},
      {"/api/v1/cluster", {get_case("/api/v1/cluster", 200)}},
  };
}

// Documented answers no request here can provoke, and why.
const std::map<std::pair<std::string, std::string>, std::string> kNotProvoked = {
    {{"/api/v1/history", "503"}, "postwatch-aggregator always runs with its store"},
    {{"/api/v1/targets", "503"}, "postwatch-aggregator always runs with its store"},
    {{"/api/v1/report", "503"}, "only a third report request while two are being made gets it"},
    {{"/api/v1/goals/{id}/progress", "503"}, "postwatch-aggregator always runs with its store"},
    {{"/api/v1/posts/{id}/events", "503"}, "only a store more than 2 s behind answers it"},
    {{"/api/v1/rollouts/{id}", "200"}, "needs --fleet-keys and a rollout started: FleetRollout.* reads one"},
    {{"/api/v1/commands/{id}", "200"}, "needs an agent online to send one to: FleetCommands.* reads one"},
};

bool template_matches(const std::string& tmpl, const std::string& target) {
  const std::string path = target.substr(0, target.find('?'));
  std::string re;
  for (std::size_t i = 0; i < tmpl.size(); ++i) {
    if (tmpl[i] == '{') {
      i = tmpl.find('}', i);
      re += "[^/]+";
    } else {
      if (std::string("\\^$.|?*+()[]").find(tmpl[i]) != std::string::npos) re += '\\';
      re += tmpl[i];
    }
  }
  return std::regex_match(path, std::regex(re));
}

// openapi_check.py on `cases` (written to `file`), against the aggregator on `port` and the
// description it serves, with the read token.
CommandResult run_checker(unsigned short port, const std::vector<json>& cases, const std::filesystem::path& file,
                          const std::string& extra = "") {
  std::ofstream(file) << json(cases).dump(1);
  return run_shell(python() + " " + shell_quoted(kChecker) + " --base-url http://127.0.0.1:" + std::to_string(port) +
                   " --token " + TokensFile::kRead + " --cases " + shell_quoted(file.string()) + extra);
}

}  // namespace

class ApiContract : public ::testing::Test {
 protected:
  TempDir dir;
  MosquittoBroker broker;
  TokensFile tokens{dir};
  // Two stream clients at most: the checker's upgrades get in even while the server is still
  // closing the previous one, and two clients held by the test provoke the documented 503.
  AggregatorProcess aggregator{broker, dir, {"--tokens-file", tokens.path.string(), "--stream-max-clients", "2"}};

  HttpReply get(const std::string& target, const std::string& token = TokensFile::kRead) {
    return http_call(aggregator.port(), verb::get, target,
                     token.empty() ? std::map<std::string, std::string>{} : bearer(token));
  }
  // The body when it is a JSON object, else an empty object (so .value() never throws).
  json get_json(const std::string& target) {
    auto j = get(target).json();
    return j.is_object() ? j : json::object();
  }

  // Agents at two posts: bamako/gw-1 with a birth (synchronised clock, one jump), a heartbeat
  // with metrics and events of four kinds (a level that turns goal 7 red, a count, a text, an
  // unknown indicator that is stored as refused); paris/skewed, no birth, its clock ten minutes
  // fast (its times corrected, a clock_offset alarm). Goal 7's alarm is acknowledged.
  void put_data_in() {
    MqttProbe pub(broker.uri(), "contract-publisher");
    const std::int64_t now = now_utc_ms();
    AgentState birth;
    birth.agent_id = "gw-1";
    birth.post_id = "bamako";
    birth.online = true;
    birth.at_ms = now;
    birth.agent_version = "contract-test";
    birth.config_hash = "c0ffee";
    birth.first_unacked_seq = 1;
    birth.heartbeat_interval_s = 30;
    birth.awaits_confirmation = true;
    birth.clock_sync = ClockSync::Synchronised;
    birth.clock_jumps = 1;
    birth.last_clock_jump_ms = 1500;
    birth.last_clock_jump_at_ms = now - 60000;
    using topics::Channel;
    pub.publish(topics::agent_topic("sub-saharan-africa", "bamako", "gw-1", Channel::State), encode_agent_state(birth));
    ASSERT_TRUE(wait_until([&] { return get_json("/api/v1/agents/bamako/gw-1").value("online", false); },
                           std::chrono::seconds(10)))
        << get("/api/v1/agents").body;
    AgentState heartbeat = birth;
    heartbeat.has_metrics = true;
    heartbeat.metrics.spool_events = 4;
    heartbeat.metrics.spool_bytes = 512;
    heartbeat.metrics.events_accepted = 4;
    heartbeat.metrics.events_sent = 4;
    heartbeat.metrics.uptime_s = 60;
    pub.publish(topics::agent_topic("sub-saharan-africa", "bamako", "gw-1", Channel::Heartbeat),
                encode_agent_state(heartbeat));
    EventBatch batch{"gw-1", "bamako", now, {}};
    batch.events = {{1, now, "terrorism_threat_level", ValueKind::Level, 5, "", "", {}},
                    {2, now, "terrorist_attacks", ValueKind::Count, 2, "", "", {}},
                    {3, now, "situation_note", ValueKind::Text, 0, "quiet", "", {}},
                    {4, now, "no_such_indicator", ValueKind::Level, 1, "", "", {}}};
    pub.publish(topics::agent_topic("sub-saharan-africa", "bamako", "gw-1", Channel::Events), encode_batch(batch));
    const std::int64_t ahead = now + 10 * 60 * 1000;
    EventBatch skewed{
        "skewed", "paris", ahead, {{1, ahead, "terrorism_threat_level", ValueKind::Level, 1, "", "", {}}}};
    pub.publish(topics::agent_topic("europe", "paris", "skewed", Channel::Events), encode_batch(skewed));
    // The ministry's figures a year apart, so the targets have readings, trends and statuses.
    const std::int64_t year = 365LL * 24 * 3600 * 1000;
    EventBatch ministry{"ministry", "the-hague", now, {}};
    ministry.events = {{1, now - year, "defence_spending_gdp_percent", ValueKind::Gauge, 1.3, "", "", {}},
                       {2, now, "defence_spending_gdp_percent", ValueKind::Gauge, 1.4, "", "", {}},
                       {3, now, "arms_export_licences_decided", ValueKind::Count, 80, "", "", {}},
                       {4, now, "arms_export_licences_in_time", ValueKind::Count, 76, "", "", {}}};
    pub.publish(topics::agent_topic("europe", "the-hague", "ministry", Channel::Events), encode_batch(ministry));

    ASSERT_TRUE(wait_until(
        [&] {
          if (get_json("/api/v1/targets")["targets"][0]["readings"].size() != 2) return false;
          auto agent = get_json("/api/v1/agents/bamako/gw-1");
          auto paris = get_json("/api/v1/posts/paris");
          return get_json("/api/v1/posts/bamako/events").value("count", 0) == 4 && agent.contains("metrics") &&
                 agent.contains("events") && paris.is_object() && paris["indicators"].size() == 1 &&
                 paris["indicators"][0].value("time_corrected", false) &&
                 get_json("/api/v1/goals/7").value("status", "") == "red";
        },
        std::chrono::seconds(10)))
        << get("/api/v1/agents").body << "\n"
        << get("/api/v1/posts/paris").body;
    std::uint64_t goal_alarm = 0;
    bool clock_alarm = false;
    ASSERT_TRUE(wait_until(
        [&] {
          for (const auto& a : get("/api/v1/alarms?state=open").json_at("alarms")) {
            if (a["kind"] == "goal" && a["goal"] == 7) goal_alarm = a["id"].get<std::uint64_t>();
            if (a["kind"] == "clock_offset" && a["post"] == "paris") clock_alarm = true;
          }
          return goal_alarm != 0 && clock_alarm;
        },
        std::chrono::seconds(10)))
        << get("/api/v1/alarms").body;
    auto ack = http_call(
        aggregator.port(), verb::post, "/api/v1/alarms/" + std::to_string(goal_alarm) + "/ack",
        {{"Authorization", std::string("Bearer ") + TokensFile::kOperator}, {"Content-Type", "application/json"}},
        R"({"by":"contract test","comment":"seen"})");
    ASSERT_EQ(ack.status, 200) << ack.body;
    // A silence over goal 7's alarm and a maintenance window for paris: alarms carry
    // silenced_by, posts maintenance, and /api/v1/silences lists both.
    for (const auto* body :
         {R"({"match":{"goal":7},"comment":"contract test","duration_s":3600})",
          R"({"match":{"post":"paris"},"maintenance":true,"comment":"contract test","duration_s":3600})"}) {
      auto silence = http_call(
          aggregator.port(), verb::post, "/api/v1/silences",
          {{"Authorization", std::string("Bearer ") + TokensFile::kOperator}, {"Content-Type", "application/json"}},
          body);
      ASSERT_EQ(silence.status, 201) << silence.body;
    }
    ASSERT_TRUE(
        wait_until([&] { return get_json("/api/v1/posts/paris").contains("maintenance"); }, std::chrono::seconds(10)));
  }

  CommandResult check(const std::vector<json>& cases, const std::string& name, const std::string& extra = "") {
    return run_checker(aggregator.port(), cases, dir.path() / (name + ".json"), extra);
  }
};

// Every documented GET path, with each answer it documents that can be provoked, answers as
// documented: status, Content-Type, required headers, and JSON bodies that hold no field the
// description does not list. Derived from the served description, so a new path or answer
// without requests here fails.
TEST_F(ApiContract, EveryDocumentedGetAnswersAsDocumented) {
  put_data_in();
  if (HasFatalFailure()) return;
  const json spec = get_json("/api/v1/openapi.json");
  ASSERT_TRUE(spec.contains("paths") && spec["paths"].is_object()) << get("/api/v1/openapi.json").body;

  const auto table = case_table();
  std::vector<json> now_cases, later_cases;
  std::set<std::string> documented_gets;
  for (const auto& [tmpl, item] : spec["paths"].items()) {
    if (!item.contains("get")) continue;
    documented_gets.insert(tmpl);
    const json responses = item["get"].value("responses", json::object());
    auto it = table.find(tmpl);
    if (it == table.end()) {
      ADD_FAILURE() << "GET " << tmpl << " is documented but not exercised: add its requests to case_table()";
      continue;
    }
    std::vector<json> cases = it->second;
    ASSERT_FALSE(cases.empty()) << tmpl;
    const std::string sample = cases.front()["path"];
    if (responses.contains("401")) cases.push_back(without_token(sample, 401));
    if (responses.contains("413"))
      cases.push_back(with(get_case(sample, 413), "headers", json{{"X-Padding", std::string(17 * 1024, 'x')}}));
    std::set<std::string> provoked;
    for (auto& c : cases) {
      EXPECT_TRUE(template_matches(tmpl, c["path"])) << c["path"] << " is not a request for " << tmpl;
      provoked.insert(std::to_string(c["status"].get<int>()));
      const bool is_later = c.value("later", false);
      c.erase("later");
      (is_later ? later_cases : now_cases).push_back(c);
    }
    for (const auto& [status, _] : responses.items())
      EXPECT_TRUE(provoked.count(status) || kNotProvoked.count({tmpl, status}))
          << "GET " << tmpl << " documents " << status << " but nothing here provokes it: add a request to "
          << "case_table(), or say why it cannot be provoked in kNotProvoked";
  }
  for (const auto& [tmpl, _] : table)
    EXPECT_TRUE(documented_gets.count(tmpl)) << tmpl << " is in case_table() but not documented";
  for (const auto& [answer, why] : kNotProvoked)
    EXPECT_TRUE(documented_gets.count(answer.first) &&
                spec["paths"][answer.first]["get"].value("responses", json::object()).contains(answer.second))
        << "kNotProvoked lists GET " << answer.first << " " << answer.second << " (" << why
        << "), which is no longer documented";
  EXPECT_GE(documented_gets.size(), 20u);

  auto first = check(now_cases, "cases");
  EXPECT_TRUE(all_passed(first, now_cases.size())) << first.output;

  // The stream full (both its clients held here) and the broker gone (not ready).
  ASSERT_TRUE(
      wait_until([&] { return get_json("/api/v1/stats").value("stream_clients", -1) == 0; }, std::chrono::seconds(10)));
  StreamClient one, two;
  ASSERT_EQ(one.connect(aggregator.port(), "/api/v1/stream", bearer(TokensFile::kRead)), 101);
  ASSERT_EQ(two.connect(aggregator.port(), "/api/v1/stream", bearer(TokensFile::kRead)), 101);
  ASSERT_TRUE(
      wait_until([&] { return get_json("/api/v1/stats").value("stream_clients", -1) == 2; }, std::chrono::seconds(10)));
  broker.stop();
  ASSERT_TRUE(wait_until([&] { return get("/readyz", "").status == 503; }, std::chrono::seconds(15)));
  auto second = check(later_cases, "later-cases");
  EXPECT_TRUE(all_passed(second, later_cases.size())) << second.output;
}

// The checker itself: a field the description does not list, a missing operationId and a wrong
// status each fail it, naming the JSON path, the rule and the operation.
TEST_F(ApiContract, TheCheckerFailsOnDrift) {
  json spec = get_json("/api/v1/openapi.json");
  ASSERT_TRUE(spec.is_object());
  ASSERT_EQ(spec["components"]["schemas"]["Stats"]["properties"].erase("ingest_paused_ms"), 1u);
  spec["paths"]["/api/v1/stats"]["get"].erase("operationId");
  const auto drifted = dir.path() / "drifted-openapi.json";
  std::ofstream(drifted) << spec.dump();

  auto r = check({get_case("/api/v1/stats", 200), get_case("/api/v1/goals", 404)}, "drift",
                 " --spec " + shell_quoted(drifted.string()));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("$.ingest_paused_ms: not in the spec (additionalProperties: false; the object is "
                          "#/components/schemas/Stats)"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("FAIL spec: GET /api/v1/stats: no operationId"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("status 200, expected 404"), std::string::npos) << r.output;

  auto spec_only =
      run_shell(python() + " " + shell_quoted(kChecker) + " --spec-only --spec " + shell_quoted(drifted.string()));
  EXPECT_EQ(spec_only.status, 1) << spec_only.output;
  auto served = run_shell(python() + " " + shell_quoted(kChecker) + " --spec-only --spec " +
                          shell_quoted((kSourceDir / "aggregator" / "src" / "feed" / "openapi.json").string()));
  EXPECT_EQ(served.status, 0) << served.output;
}

// /metrics passes Prometheus's own parser and linter, with data in (labels, the histogram).
TEST_F(ApiContract, MetricsPassPromtoolCheck) {
  const std::string promtool = find_program("promtool");
  ASSERT_FALSE(promtool.empty()) << "promtool not found on PATH: run tools/bootstrap (it installs the Debian package "
                                    "prometheus, which provides /usr/bin/promtool)";
  put_data_in();
  if (HasFatalFailure()) return;
  auto metrics = get("/metrics", "");
  ASSERT_EQ(metrics.status, 200);
  ASSERT_NE(metrics.body.find("postwatch_ingest_latency_seconds_count "), std::string::npos) << metrics.body;
  const auto file = dir.path() / "metrics.txt";
  std::ofstream(file) << metrics.body;
  auto r = run_shell(shell_quoted(promtool) + " check metrics < " + shell_quoted(file.string()));
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output, "") << "promtool check metrics found problems";
}

// What the fixture's instance never answers: a cluster member's /api/v1/cluster (a single
// instance says {"clustered": false}), and a goal whose new status waits out --min-duration-s
// (its "pending").
TEST(ApiContractModes, AClusterMemberAndAPendingStatusAnswerAsDocumented) {
  TempDir dir;
  NatsCluster nats(1);  // a one-node cluster: the member holds every partition
  TokensFile tokens(dir);
  AggregatorProcess member(nats.mqtt_uri(), dir,
                           {"--tokens-file", tokens.path.string(), "--cluster-group", "contract", "--instance-id",
                            "one", "--nats", nats.servers(), "--nats-replicas", "1", "--min-duration-s", "3600"});
  MqttProbe pub(nats.mqtt_uri(), "contract-publisher");
  pub.publish_event("sub-saharan-africa", "bamako", "terrorism_threat_level", 5);
  auto get = [&](const std::string& target) {
    auto j = http_call(member.port(), verb::get, target, bearer(TokensFile::kRead)).json();
    return j.is_object() ? j : json::object();
  };
  // From unknown a status shows at once; from red, green waits the hour out.
  ASSERT_TRUE(wait_until([&] { return get("/api/v1/goals/7").value("status", "") == "red"; }, std::chrono::seconds(10)))
      << get("/api/v1/goals/7").dump();
  pub.publish_event("sub-saharan-africa", "bamako", "terrorism_threat_level", 1);
  ASSERT_TRUE(wait_until([&] { return get("/api/v1/goals/7").contains("pending"); }, std::chrono::seconds(10)))
      << get("/api/v1/goals/7").dump();
  EXPECT_EQ(get("/api/v1/cluster").value("group", ""), "contract");
  auto r =
      run_checker(member.port(),
                  {get_case("/api/v1/cluster", 200), get_case("/api/v1/goals/7", 200), get_case("/api/v1/goals", 200)},
                  dir.path() / "cases.json");
  EXPECT_TRUE(all_passed(r, 3)) << r.output;
  // Each instance signs with its own key: one does not rotate it alone.
  auto rotate = http_call(member.port(), verb::post, "/api/v1/aggregator-key/next", bearer(TokensFile::kOperator), "");
  EXPECT_EQ(rotate.status, 409) << rotate.body;
  EXPECT_NE(rotate.body.find("instance of a cluster"), std::string::npos) << rotate.body;
  EXPECT_TRUE(get("/api/v1/aggregator-key").value("next_key_id", json()).is_null());
}
