// The operations-centre HTTP API over real HTTP against the real aggregator binary
// (with a tokens file) and a real Mosquitto: every endpoint, bad input, access control.
#include "postwatch/clock.hpp"
#include "support/aggregator_process.hpp"
#include "support/feed_http.hpp"
#include "support/mqtt_probe.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <fstream>
#include <iterator>
#include <regex>
#include <set>

using namespace postwatch;
using namespace postwatch::test;
using nlohmann::json;
using verb = boost::beast::http::verb;

namespace {

bool is_json_error(const HttpReply& r, int status) {
  auto j = r.json();
  return r.status == status && r.header("content-type") == "application/json" && j.is_object() && j.contains("error") &&
         j["error"]["status"] == status && j["error"]["message"].is_string() &&
         !j["error"]["message"].get<std::string>().empty();
}

// The number a metric sample line carries, or -1 when the line is not there.
double metric(const std::string& text, const std::string& sample) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (line.rfind(sample + " ", 0) == 0) return std::stod(line.substr(sample.size() + 1));
  return -1;
}

}  // namespace

class FeedApi : public ::testing::Test {
 protected:
  TempDir dir;
  MosquittoBroker broker;
  TokensFile tokens{dir};
  AggregatorProcess aggregator{broker, dir, {"--tokens-file", tokens.path.string()}};

  HttpReply get(const std::string& target, const std::string& token = TokensFile::kRead) {
    return http_call(aggregator.port(), verb::get, target,
                     token.empty() ? std::map<std::string, std::string>{} : bearer(token));
  }
  HttpReply ack(const std::string& id, const std::string& token, const std::string& body = "",
                const std::string& type = "application/json") {
    std::map<std::string, std::string> h;
    if (!token.empty()) h = bearer(token);
    if (!type.empty()) h["Content-Type"] = type;
    return http_call(aggregator.port(), verb::post, "/api/v1/alarms/" + id + "/ack", h, body);
  }
  std::string goal_status(int g) {
    auto j = get("/api/v1/goals/" + std::to_string(g)).json();
    return j.is_object() ? j.value("status", "") : "";
  }
  // Bamako reports the highest terrorism threat level: goal 7 (and 2 via post security? no) turns red.
  void make_goal7_red() {
    MqttProbe pub(broker.uri(), "feed-test-publisher");
    pub.publish_event("sub-saharan-africa", "bamako", "terrorism_threat_level", 5);
    ASSERT_TRUE(wait_until([&] { return goal_status(7) == "red"; }, std::chrono::seconds(10))) << goal_status(7);
  }
  std::uint64_t open_goal_alarm(int goal) {
    std::uint64_t id = 0;
    wait_until(
        [&] {
          for (const auto& a : get("/api/v1/alarms?state=open").json_at("alarms"))
            if (a["kind"] == "goal" && a["goal"] == goal) id = a["id"].get<std::uint64_t>();
          return id != 0;
        },
        std::chrono::seconds(5));
    return id;
  }
};

TEST_F(FeedApi, HealthReadinessMetricsAndDashboardNeedNoToken) {
  EXPECT_EQ(get("/healthz", "").status, 200);
  EXPECT_EQ(get("/readyz", "").status, 200);
  auto m = get("/metrics", "");
  EXPECT_EQ(m.status, 200);
  EXPECT_EQ(m.header("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  for (auto* path : {"/", "/dashboard", "/assets/app.js", "/assets/style.css", "/assets/favicon.svg"})
    EXPECT_EQ(get(path, "").status, 200) << path;
  EXPECT_EQ(get("/", "").header("content-type"), "text/html; charset=utf-8");
  EXPECT_EQ(get("/assets/app.js", "").header("content-type"), "text/javascript; charset=utf-8");
  EXPECT_NE(get("/", "").header("content-security-policy").find("default-src 'self'"), std::string::npos);
}

TEST_F(FeedApi, ApiRefusesMissingAndUnknownTokens) {
  auto none = get("/api/v1/goals", "");
  EXPECT_TRUE(is_json_error(none, 401)) << none.body;
  EXPECT_EQ(none.header("www-authenticate"), R"(Bearer realm="postwatch")");
  auto wrong = get("/api/v1/goals", "not-a-token-of-ours-0000");
  EXPECT_TRUE(is_json_error(wrong, 401)) << wrong.body;
  EXPECT_NE(wrong.header("www-authenticate").find("invalid_token"), std::string::npos);
  // ?token= is for the stream only.
  EXPECT_EQ(get(std::string("/api/v1/goals?token=") + TokensFile::kRead, "").status, 401);
  auto basic = http_call(aggregator.port(), verb::get, "/api/v1/goals", {{"Authorization", "Basic eDp5"}});
  EXPECT_EQ(basic.status, 401);
  EXPECT_EQ(get("/api/v1/goals", TokensFile::kRead).status, 200);
  EXPECT_EQ(get("/api/v1/goals", TokensFile::kOperator).status, 200);
  // Unknown endpoints under /api/v1 do not answer strangers either.
  EXPECT_EQ(get("/api/v1/nope", "").status, 401);
  // Tokens never reach the log.
  EXPECT_EQ(aggregator.process().log().find(TokensFile::kRead), std::string::npos);
  EXPECT_EQ(aggregator.process().log().find(TokensFile::kOperator), std::string::npos);
}

TEST_F(FeedApi, WhoAmITellsNameAndRole) {
  auto r = get("/api/v1/whoami").json();
  EXPECT_EQ(r["auth"], "token");
  EXPECT_EQ(r["name"], "wall screen");
  EXPECT_EQ(r["role"], "read");
  EXPECT_EQ(get("/api/v1/whoami", TokensFile::kOperator).json()["role"], "operator");
}

TEST_F(FeedApi, EveryReadEndpointAnswersJson) {
  const std::vector<std::pair<std::string, std::string>> endpoints = {
      {"/api/v1/goals", "goals"},
      {"/api/v1/pillars", "pillars"},
      {"/api/v1/goals/7", "indicators"},
      {"/api/v1/threats", "threats"},
      {"/api/v1/regions", "regions"},
      {"/api/v1/regions?goal=7", "regions"},
      {"/api/v1/posts", "posts"},
      {"/api/v1/posts?region=europe&goal=3", "posts"},
      {"/api/v1/posts/bamako", "indicators"},
      {"/api/v1/posts/bamako/events", "events"},
      {"/api/v1/posts/bamako/events?indicator=terrorism_threat_level&limit=5", "events"},
      {"/api/v1/agents", "agents"},
      {"/api/v1/alarms", "alarms"},
      {"/api/v1/alarms?state=open", "alarms"},
      {"/api/v1/alarms?state=cleared", "alarms"},
      {"/api/v1/history?scope=goal&id=7", "points"},
      {"/api/v1/history?scope=pillar&id=defend", "points"},
      {"/api/v1/stats", "events_accepted"},
      {"/api/v1/whoami", "role"},
      {"/api/v1/openapi.json", "paths"}};
  for (const auto& [target, key] : endpoints) {
    auto r = get(target);
    EXPECT_EQ(r.status, 200) << target << ": " << r.body;
    EXPECT_EQ(r.header("content-type"), "application/json") << target;
    auto j = r.json();
    ASSERT_TRUE(j.is_object()) << target;
    EXPECT_TRUE(j.contains(key)) << target << " lacks " << key;
  }
  auto regions = get("/api/v1/regions").json()["regions"];
  EXPECT_EQ(regions.size(), 8u);
  std::size_t posts = 0;
  for (const auto& r : regions) posts += r["posts"].get<std::size_t>();
  EXPECT_EQ(posts, 142u);
  auto europe = get("/api/v1/posts?region=europe").json()["posts"];
  ASSERT_FALSE(europe.empty());
  for (const auto& p : europe) EXPECT_EQ(p["region"], "europe");
  EXPECT_EQ(get("/api/v1/posts").json()["posts"].size(), 142u);
}

// An agent that keeps publishing on its own topic as if it were another post: each
// batch is refused and counted, and the repeats raise a red alarm naming the post
// whose credentials were used and the identity it claimed.
TEST_F(FeedApi, RepeatedTopicMismatchRaisesAnAlarm) {
  MqttProbe pub(broker.uri(), "feed-test-publisher");
  for (std::uint64_t seq = 1; seq <= 3; ++seq) {
    EventBatch b{"gw-1", "bamako", now_utc_ms(), {}};
    b.events.push_back(IndicatorEvent{seq, now_utc_ms(), "terrorism_threat_level", ValueKind::Level, 5, "", "", {}});
    pub.publish("postwatch/v1/europe/paris/gw-1/events", encode_batch(b));
  }
  nlohmann::json alarm;
  ASSERT_TRUE(wait_until(
      [&] {
        for (const auto& a : get("/api/v1/alarms?state=open").json_at("alarms"))
          if (a["kind"] == "topic_mismatch") alarm = a;
        return alarm.is_object();
      },
      std::chrono::seconds(10)))
      << get("/api/v1/alarms").body;
  EXPECT_EQ(alarm["post"], "paris");
  EXPECT_EQ(alarm["level"], "red");
  ASSERT_FALSE(alarm["causes"].empty());
  EXPECT_EQ(alarm["causes"][0]["post"], "bamako/gw-1");
  EXPECT_EQ(get("/api/v1/stats").json()["batches_topic_mismatch"], 3);
  EXPECT_EQ(goal_status(7), "unknown") << "the refused events must not reach the board";
}

TEST_F(FeedApi, UnknownIdsAre404) {
  for (auto* target : {"/api/v1/goals/99", "/api/v1/posts/atlantis", "/api/v1/regions?goal=99",
                       "/api/v1/posts?region=atlantis", "/api/v1/posts?goal=0", "/api/v1/history?scope=goal&id=99",
                       "/api/v1/history?scope=pillar&id=nope", "/api/v1/agents/atlantis/x", "/api/v1/nope", "/nope",
                       "/api/v1/posts/atlantis/events", "/api/v1/posts/bamako/events?indicator=nope"}) {
    auto r = get(target);
    EXPECT_TRUE(is_json_error(r, 404)) << target << ": " << r.status << " " << r.body;
  }
  EXPECT_TRUE(is_json_error(ack("999", TokensFile::kOperator, R"({"by":"x"})"), 404));
}

TEST_F(FeedApi, BadInputIs400) {
  for (auto* target : {"/api/v1/goals/abc", "/api/v1/regions?goal=seven", "/api/v1/posts?goal=x",
                       "/api/v1/posts?format=xml", "/api/v1/alarms?state=bogus", "/api/v1/history?scope=post&id=bamako",
                       "/api/v1/history?scope=goal&id=7&from=abc", "/api/v1/history?scope=goal&id=7&to=1e3",
                       "/api/v1/history?scope=goal&id=7&from=2000&to=1000", "/api/v1/history?scope=goal&id=7&from=-5",
                       "/api/v1/history?scope=goal&id=7&format=xml", "/api/v1/posts/bamako/events?from=x",
                       "/api/v1/posts/bamako/events?from=2000&to=1000", "/api/v1/posts/bamako/events?limit=0",
                       "/api/v1/posts/bamako/events?limit=10001", "/api/v1/posts/bamako/events?format=xml"}) {
    auto r = get(target);
    EXPECT_TRUE(is_json_error(r, 400)) << target << ": " << r.status << " " << r.body;
  }
  EXPECT_TRUE(is_json_error(ack("abc", TokensFile::kOperator, R"({"by":"x"})"), 400));
  EXPECT_TRUE(is_json_error(ack("1", TokensFile::kOperator, "{not json"), 400));
  EXPECT_TRUE(is_json_error(ack("1", TokensFile::kOperator, R"({"by": 5})"), 400));
  EXPECT_TRUE(is_json_error(ack("1", TokensFile::kOperator, R"(["by"])"), 400));
  EXPECT_TRUE(is_json_error(ack("1", TokensFile::kOperator, R"({"by":"x"})", "text/plain"), 415));
  EXPECT_TRUE(is_json_error(ack("1", TokensFile::kOperator, json{{"by", std::string(200, 'x')}}.dump()), 400));
}

TEST_F(FeedApi, WrongMethodIs405WithAllow) {
  auto del = http_call(aggregator.port(), verb::delete_, "/api/v1/goals", bearer(TokensFile::kRead));
  EXPECT_TRUE(is_json_error(del, 405)) << del.body;
  EXPECT_EQ(del.header("allow"), "GET, HEAD");
  auto get_ack = get("/api/v1/alarms/1/ack", TokensFile::kOperator);
  EXPECT_TRUE(is_json_error(get_ack, 405));
  EXPECT_EQ(get_ack.header("allow"), "POST");
  EXPECT_TRUE(is_json_error(get("/api/v1/stream"), 426));
}

TEST_F(FeedApi, AcknowledgingNeedsAnOperatorAndDefaultsToTheTokensName) {
  make_goal7_red();
  auto id = open_goal_alarm(7);
  ASSERT_NE(id, 0u);
  const std::string sid = std::to_string(id);
  EXPECT_TRUE(is_json_error(ack(sid, ""), 401));
  auto forbidden = ack(sid, TokensFile::kRead, R"({"by":"someone"})");
  EXPECT_TRUE(is_json_error(forbidden, 403)) << forbidden.body;
  auto ok = ack(sid, TokensFile::kOperator, "", "");
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(ok.json()["ack"]["by"], "duty officer");
  EXPECT_TRUE(ok.json()["acknowledged"].get<bool>());
  auto named = ack(sid, TokensFile::kOperator, R"({"by":"night shift","comment":"called the embassy"})");
  ASSERT_EQ(named.status, 200) << named.body;
  EXPECT_EQ(named.json()["ack"]["by"], "night shift");
  EXPECT_EQ(named.json()["ack"]["comment"], "called the embassy");
  bool listed = false;
  for (const auto& a : get("/api/v1/alarms?state=open").json_at("alarms"))
    if (a["id"] == id) listed = a["acknowledged"] == true && a["ack"]["by"] == "night shift";
  EXPECT_TRUE(listed);
}

TEST_F(FeedApi, ThreatsAndRegionsFollowTheGoals) {
  make_goal7_red();
  auto threats = get("/api/v1/threats").json()["threats"];
  ASSERT_EQ(threats.size(), 6u);
  bool seen = false;
  for (const auto& t : threats) {
    if (t["id"] != "terrorism") {
      continue;
    }
    seen = true;
    EXPECT_EQ(t["status"], "red");
    bool goal7 = false;
    for (const auto& g : t["goals"]) goal7 = goal7 || (g["id"] == 7 && g["status"] == "red" && g["score"].is_number());
    EXPECT_TRUE(goal7) << t.dump();
  }
  EXPECT_TRUE(seen);
  for (const auto& t : threats) {
    if (t["id"] == "cyber") {
      EXPECT_EQ(t["status"], "unknown");  // goals 4, 6, 9: nothing reported
    }
  }

  for (const auto& r : get("/api/v1/regions").json_at("regions")) {
    if (r["id"] == "sub-saharan-africa") {
      EXPECT_EQ(r["status"], "red");
      EXPECT_EQ(r["posts_reporting"], 1);
      EXPECT_EQ(r["posts_red"], 1);
      EXPECT_GT(r["posts"].get<int>(), 1);
    } else {
      EXPECT_EQ(r["status"], "unknown") << r.dump();
      EXPECT_EQ(r["posts_reporting"], 0);
    }
  }
  // Goal 3 is not fed by terrorism_threat_level: seen through it, Bamako reports nothing.
  for (const auto& r : get("/api/v1/regions?goal=3").json_at("regions")) EXPECT_EQ(r["posts_reporting"], 0);
  auto bamako = get("/api/v1/posts?region=sub-saharan-africa&goal=7").json()["posts"];
  bool found = false;
  for (const auto& p : bamako)
    if (p["id"] == "bamako") found = p["status"] == "red" && p["silent"] == false && p["indicators_reporting"] == 1;
  EXPECT_TRUE(found) << bamako.dump();
}

TEST_F(FeedApi, CsvExportsForPostsAndHistory) {
  make_goal7_red();
  auto posts = get("/api/v1/posts?format=csv");
  ASSERT_EQ(posts.status, 200);
  EXPECT_EQ(posts.header("content-type"), "text/csv; charset=utf-8");
  EXPECT_NE(posts.header("content-disposition").find("posts.csv"), std::string::npos);
  std::vector<std::string> lines;
  std::istringstream in(posts.body);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 143u);  // header + 142 posts
  EXPECT_EQ(lines[0],
            "id,city,country,region,status,silent,indicators_reporting,last_seen_ms,last_seen_utc,events_lost\r");
  for (std::size_t i = 1; i < lines.size(); ++i) ASSERT_TRUE(lines[i].ends_with(",0\r")) << lines[i];
  bool bamako = false;
  for (const auto& l : lines) bamako = bamako || l.rfind("bamako,Bamako,Mali,sub-saharan-africa,red,false,1,", 0) == 0;
  EXPECT_TRUE(bamako) << posts.body.substr(0, 400);

  auto hist = get("/api/v1/history?scope=goal&id=7&format=csv");
  ASSERT_EQ(hist.status, 200);
  EXPECT_EQ(hist.header("content-type"), "text/csv; charset=utf-8");
  EXPECT_EQ(hist.body.rfind("at_ms,at_utc,scope,id,status,score\r\n", 0), 0u);
  std::regex row(R"(\d+,\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z,goal,7,red,[0-9.]+\r)");
  bool red_row = false;
  std::istringstream hin(hist.body);
  for (std::string line; std::getline(hin, line);) red_row = red_row || std::regex_match(line, row);
  EXPECT_TRUE(red_row) << hist.body;
  auto json_hist = get("/api/v1/history?scope=goal&id=7").json();
  ASSERT_FALSE(json_hist["points"].empty());
  EXPECT_EQ(json_hist["points"].back()["status"], "red");
  for (const auto& pt : json_hist["points"]) {
    if (pt["status"] == "unknown") {
      EXPECT_TRUE(pt["score"].is_null()) << pt.dump();
    } else {
      ASSERT_EQ(pt["status"], "red");
      ASSERT_TRUE(pt["score"].is_number()) << pt.dump();
      EXPECT_LE(pt["score"].get<double>(), 30.0) << "a red goal scores in the red band";
    }
  }
  // Goal 3 has no data: its points (written at start) are unknown, with no score.
  auto unknown_hist = get("/api/v1/history?scope=goal&id=3").json();
  ASSERT_FALSE(unknown_hist["points"].empty());
  for (const auto& pt : unknown_hist["points"]) {
    EXPECT_EQ(pt["status"], "unknown");
    EXPECT_TRUE(pt["score"].is_null()) << pt.dump();
  }
  auto unknown_csv = get("/api/v1/history?scope=goal&id=3&format=csv").body;
  EXPECT_NE(unknown_csv.find(",goal,3,unknown,\r\n"), std::string::npos) << unknown_csv;
  EXPECT_EQ(unknown_csv.find(",goal,3,unknown,0"), std::string::npos) << unknown_csv;

  // The readings behind it, as stored: the agent's time, the corrected one, the flags.
  auto events = get("/api/v1/posts/bamako/events?format=csv");
  ASSERT_EQ(events.status, 200);
  EXPECT_NE(events.header("content-disposition").find("events-bamako.csv"), std::string::npos);
  EXPECT_EQ(events.body.rfind("observed_at_ms,observed_at_utc,agent_observed_at_ms,time_corrected,clock_correction_ms,"
                              "received_at_ms,agent,seq,indicator,value,text,late,refused\r\n",
                              0),
            0u)
      << events.body;
  std::regex event_row(
      R"((\d+),\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z,\1,false,0,\d+,[^,]+,\d+,terrorism_threat_level,5,,false,\r)");
  bool found = false;
  std::istringstream ein(events.body);
  for (std::string line; std::getline(ein, line);) found = found || std::regex_match(line, event_row);
  EXPECT_TRUE(found) << events.body;
}

// docs/operations.md's metrics table is the operator's reference: every family /metrics
// exposes must be in it, with its type (two were missing once, unnoticed).
TEST_F(FeedApi, EveryExposedMetricIsInTheOperationsTable) {
  const std::string m = get("/metrics", "").body;
  std::ifstream doc_file(catalogue_path().parent_path().parent_path() / "docs" / "operations.md");
  ASSERT_TRUE(doc_file) << "docs/operations.md not found from the catalogue's path";
  const std::string doc((std::istreambuf_iterator<char>(doc_file)), std::istreambuf_iterator<char>());
  std::regex type_line(R"(^# TYPE (\S+) (\S+)$)");
  std::istringstream in(m);
  int families = 0;
  for (std::string line; std::getline(in, line);) {
    std::smatch t;
    if (!std::regex_match(line, t, type_line)) continue;
    ++families;
    EXPECT_NE(doc.find("| `" + t[1].str() + "` | " + t[2].str() + " |"), std::string::npos)
        << t[1] << " (" << t[2] << ") is exposed but not in docs/operations.md's metrics table";
  }
  EXPECT_GT(families, 30) << m;
  // Each alarm kind has its own series, 0 included.
  for (auto* kind : {"goal", "post_silent", "topic_mismatch", "clock_offset", "store_failing"})
    EXPECT_EQ(metric(m, std::string(R"(postwatch_alarms_open{kind=")") + kind + "\"}"), 0) << kind;
}

TEST_F(FeedApi, MetricsCountEventsRejectionsLatencyAndGoalStatus) {
  make_goal7_red();
  MqttProbe pub(broker.uri(), "metrics-publisher");
  pub.publish("postwatch/v1/sub-saharan-africa/bamako/evil/events", std::string("not a flatbuffer"));
  pub.publish_event("europe", "bamako", "terrorism_threat_level", 5);  // wrong region: unknown_post
  std::string m;
  ASSERT_TRUE(wait_until(
      [&] {
        m = get("/metrics", "").body;
        return metric(m, R"(postwatch_batches_rejected_total{reason="unknown_post"})") == 1;
      },
      std::chrono::seconds(10)))
      << m;
  EXPECT_EQ(metric(m, R"(postwatch_batches_rejected_total{reason="wrong_identifier"})"), 1);
  EXPECT_EQ(metric(m, R"(postwatch_batches_rejected_total{reason="bad_topic"})"), 0);
  EXPECT_EQ(metric(m, R"(postwatch_events_rejected_total{reason="unknown_indicator"})"), 0);
  EXPECT_EQ(metric(m, "postwatch_events_accepted_total"), 1);
  EXPECT_EQ(metric(m, "postwatch_events_duplicate_total"), 0);
  EXPECT_EQ(metric(m, R"(postwatch_goal_status{goal="7",pillar="defend"})"), 3);
  EXPECT_EQ(metric(m, R"(postwatch_goal_status{goal="1",pillar="prevent"})"), 0);
  EXPECT_EQ(metric(m, "postwatch_ingest_latency_seconds_count"), 1);
  EXPECT_EQ(metric(m, R"(postwatch_ingest_latency_seconds_bucket{le="+Inf"})"), 1);
  EXPECT_EQ(metric(m, R"(postwatch_ingest_latency_seconds_bucket{le="60"})"), 1);
  EXPECT_GE(metric(m, "postwatch_ws_clients"), 0);
  EXPECT_GE(metric(m, "postwatch_posts_silent"), 0);
  EXPECT_GE(metric(m, "postwatch_store_pending_events"), 0);
  EXPECT_GE(metric(m, "postwatch_agents_online"), 0);
  EXPECT_NE(m.find("# TYPE postwatch_ingest_latency_seconds histogram"), std::string::npos);
  EXPECT_NE(m.find("# TYPE postwatch_events_accepted_total counter"), std::string::npos);
  // Every sample line is "name{labels} value" or "name value".
  std::regex sample(R"(^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? [-+0-9.eEInfaN]+$)");
  std::istringstream in(m);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line[0] != '#') {
      EXPECT_TRUE(std::regex_match(line, sample)) << line;
    }
  }
}

TEST_F(FeedApi, DashboardFilesRevalidateWithEtag) {
  auto first = get("/assets/app.js", "");
  ASSERT_EQ(first.status, 200);
  auto etag = first.header("etag");
  ASSERT_FALSE(etag.empty());
  auto again = http_call(aggregator.port(), verb::get, "/assets/app.js", {{"If-None-Match", etag}});
  EXPECT_EQ(again.status, 304);
  EXPECT_TRUE(again.body.empty());
}

// The OpenAPI description and the routes agree: every documented operation is
// routed, and the documented set is the one this test knows.
TEST_F(FeedApi, OpenApiDescribesEveryEndpoint) {
  auto spec = get("/api/v1/openapi.json").json();
  ASSERT_TRUE(spec.is_object());
  EXPECT_EQ(spec["openapi"].get<std::string>().substr(0, 2), "3.");
  std::set<std::string> documented;
  for (const auto& [path, ops] : spec["paths"].items())
    for (const auto& [method, op] : ops.items()) {
      documented.insert(method + " " + path);
      EXPECT_TRUE(op.contains("responses")) << method << " " << path;
    }
  const std::set<std::string> expected = {"get /healthz",
                                          "get /readyz",
                                          "get /metrics",
                                          "get /",
                                          "get /dashboard",
                                          "get /api/v1/openapi.json",
                                          "get /api/v1/whoami",
                                          "get /api/v1/goals",
                                          "get /api/v1/pillars",
                                          "get /api/v1/goals/{id}",
                                          "get /api/v1/goals/{id}/progress",
                                          "get /api/v1/targets",
                                          "get /api/v1/report",
                                          "get /api/v1/threats",
                                          "get /api/v1/regions",
                                          "get /api/v1/posts",
                                          "get /api/v1/posts/{id}",
                                          "get /api/v1/posts/{id}/events",
                                          "get /api/v1/agents",
                                          "get /api/v1/agents/{post}/{agent}",
                                          "get /api/v1/agent-keys",
                                          "post /api/v1/agent-keys/{post}/{agent}/revoke",
                                          "post /api/v1/enrolment-tokens",
                                          "get /api/v1/aggregator-key",
                                          "post /api/v1/aggregator-key/next",
                                          "post /api/v1/aggregator-key/switch",
                                          "get /api/v1/stats",
                                          "get /api/v1/cluster",
                                          "get /api/v1/alarms",
                                          "post /api/v1/alarms/{id}/ack",
                                          "get /api/v1/silences",
                                          "post /api/v1/silences",
                                          "delete /api/v1/silences/{id}",
                                          "get /api/v1/rollouts",
                                          "post /api/v1/rollouts",
                                          "get /api/v1/rollouts/{id}",
                                          "post /api/v1/rollouts/{id}/{action}",
                                          "get /api/v1/commands",
                                          "post /api/v1/commands",
                                          "get /api/v1/commands/{id}",
                                          "get /api/v1/history",
                                          "get /api/v1/stream"};
  EXPECT_EQ(documented, expected);
  EXPECT_EQ(get("/api/v1/cluster").json(), nlohmann::json({{"clustered", false}}));  // one instance
  // Each documented GET answers (not "no such endpoint"), with example parameters filled in.
  for (const auto& op : documented) {
    if (op.rfind("get ", 0) != 0) continue;
    std::string path = op.substr(4);
    path = std::regex_replace(path, std::regex(R"(/goals/\{id\})"), "/goals/7");
    path = std::regex_replace(path, std::regex(R"(/posts/\{id\})"), "/posts/bamako");
    if (path == "/api/v1/agents/{post}/{agent}") {
      make_goal7_red();  // an event from bamako/t1, so the agent is known
      path = "/api/v1/agents/bamako/t1";
    }
    if (path == "/api/v1/history") path += "?scope=goal&id=7";
    if (path == "/api/v1/rollouts/{id}") continue;  // needs --fleet-keys and a rollout: FleetRollout.*
    if (path == "/api/v1/commands/{id}") continue;  // needs a command sent: FleetCommands.*
    auto r = get(path);
    if (path == "/api/v1/stream")
      EXPECT_EQ(r.status, 426);
    else
      EXPECT_EQ(r.status, 200) << path << ": " << r.body;
  }
  // Every response code the routes above produced is documented for its operation.
  EXPECT_TRUE(spec["paths"]["/api/v1/alarms/{id}/ack"]["post"]["responses"].contains("403"));
  EXPECT_TRUE(spec["paths"]["/api/v1/history"]["get"]["responses"].contains("400"));
  EXPECT_TRUE(spec["paths"]["/api/v1/posts"]["get"]["responses"]["200"]["content"].contains("text/csv"));
}

// ---- start-up refusals and the open mode -------------------------------------------------

namespace {

std::vector<std::string> aggregator_args(const MosquittoBroker& broker, const TempDir& dir,
                                         std::vector<std::string> extra) {
  std::vector<std::string> a = {(binary_dir() / "aggregator" / "postwatch-aggregator").string(),
                                "--broker",
                                broker.uri(),
                                "--http-port",
                                std::to_string(free_port()),
                                "--catalogue",
                                catalogue_path().string(),
                                "--data-dir",
                                (dir.path() / "data").string()};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

}  // namespace

TEST(FeedAccessStartup, RefusesATokensFileOthersCanRead) {
  TempDir dir;
  MosquittoBroker broker;
  TokensFile tokens(dir);
  std::filesystem::permissions(tokens.path, std::filesystem::perms::others_read, std::filesystem::perm_options::add);
  ChildProcess p(aggregator_args(broker, dir, {"--tokens-file", tokens.path.string()}), dir.path() / "agg.log");
  EXPECT_EQ(p.wait(std::chrono::seconds(15)), 2) << p.log();
  EXPECT_NE(p.log().find("accessible to other users"), std::string::npos) << p.log();
  EXPECT_NE(p.log().find("chmod 600"), std::string::npos) << p.log();
  EXPECT_EQ(p.log().find(TokensFile::kRead), std::string::npos);
}

TEST(FeedAccessStartup, RefusesBadTokensFilesWithoutQuotingTokens) {
  TempDir dir;
  MosquittoBroker broker;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"tokens":[{"token":"secret-token-abcdefgh-1","role":"admin","name":"x"}]})", "role must be"},
      {R"({"tokens":[{"token":"short","role":"read","name":"x"}]})", "shorter than 16"},
      {R"({"tokens":[]})", "empty"},
      {R"({"tokens":[{"token":"secret-token-abcdefgh-1","role":"read"}]})", "name"},
      {R"({"tokens":[{"token":"secret-token-abcdefgh-1","role":"read","name":"a"},
                     {"token":"secret-token-abcdefgh-1","role":"operator","name":"b"}]})",
       "same token"},
      {R"({"tokens": [ {"token":"secret-token-abcdefgh-1", )", "not valid JSON"}};
  int i = 0;
  for (const auto& [text, why] : cases) {
    auto file = dir.path() / ("tokens" + std::to_string(i++) + ".json");
    std::ofstream(file) << text;
    std::filesystem::permissions(file, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    ChildProcess p(aggregator_args(broker, dir, {"--tokens-file", file.string()}),
                   dir.path() / ("agg" + std::to_string(i) + ".log"));
    EXPECT_EQ(p.wait(std::chrono::seconds(15)), 2) << text << "\n" << p.log();
    EXPECT_NE(p.log().find(why), std::string::npos) << p.log();
    EXPECT_EQ(p.log().find("secret-token-abcdefgh-1"), std::string::npos) << p.log();
  }
  ChildProcess missing(aggregator_args(broker, dir, {"--tokens-file", (dir.path() / "nope.json").string()}),
                       dir.path() / "missing.log");
  EXPECT_EQ(missing.wait(std::chrono::seconds(15)), 2);
  EXPECT_NE(missing.log().find("nope.json"), std::string::npos) << missing.log();
}

TEST(FeedAccessStartup, RefusesAnOpenApiOffLoopback) {
  TempDir dir;
  MosquittoBroker broker;
  ChildProcess p(aggregator_args(broker, dir, {"--http-address", "0.0.0.0"}), dir.path() / "agg.log");
  EXPECT_EQ(p.wait(std::chrono::seconds(15)), 2) << p.log();
  EXPECT_NE(p.log().find("--tokens-file"), std::string::npos) << p.log();
}

TEST(FeedOpenMode, OpenOnLoopbackWithAWarningAndAckNeedsAName) {
  TempDir dir;
  MosquittoBroker broker;
  AggregatorProcess aggregator(broker, dir);
  EXPECT_NE(aggregator.process().log().find("no --tokens-file"), std::string::npos);
  EXPECT_EQ(http_call(aggregator.port(), verb::get, "/api/v1/goals").status, 200);
  auto who = http_call(aggregator.port(), verb::get, "/api/v1/whoami").json();
  EXPECT_EQ(who["auth"], "none");
  MqttProbe pub(broker.uri(), "feed-test-publisher");
  pub.publish_event("sub-saharan-africa", "bamako", "terrorism_threat_level", 5);
  std::uint64_t id = 0;
  ASSERT_TRUE(wait_until(
      [&] {
        for (const auto& a : http_call(aggregator.port(), verb::get, "/api/v1/alarms?state=open").json_at("alarms"))
          if (a["kind"] == "goal") id = a["id"].get<std::uint64_t>();
        return id != 0;
      },
      std::chrono::seconds(10)));
  const std::string target = "/api/v1/alarms/" + std::to_string(id) + "/ack";
  auto anonymous = http_call(aggregator.port(), verb::post, target, {{"Content-Type", "application/json"}}, "{}");
  EXPECT_EQ(anonymous.status, 400) << anonymous.body;
  auto named =
      http_call(aggregator.port(), verb::post, target, {{"Content-Type", "application/json"}}, R"({"by":"op"})");
  EXPECT_EQ(named.status, 200) << named.body;
}
