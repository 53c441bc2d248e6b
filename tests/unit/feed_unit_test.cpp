// The feed's parts on their own: tokens, metrics text, the figure registry, query and CSV
// helpers, the ingest latency hook, the embedded files, and the live stream's bounded queues.
#include "feed/access.hpp"
#include "feed/assets.hpp"
#include "feed/figure_registry.hpp"
#include "feed/http_helpers.hpp"
#include "feed/http_server.hpp"
#include "feed/live_stream.hpp"
#include "feed/metrics.hpp"
#include "ingest/batch_ingest.hpp"
#include "postwatch/wire_codec.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <nlohmann/json.hpp>

#include <fstream>
#include <future>
#include <thread>

using namespace postwatch;
using namespace postwatch::aggregator;
using nlohmann::json;

namespace {

std::shared_ptr<spdlog::logger> quiet() {
  return std::make_shared<spdlog::logger>("q", std::make_shared<spdlog::sinks::null_sink_mt>());
}

HttpRequest with_auth(const std::string& value) {
  HttpRequest r{http::verb::get, "/", 11};
  r.set(http::field::authorization, value);
  return r;
}

}  // namespace

// ---- access ---------------------------------------------------------------------------

TEST(FeedAccess, FindsTokensByValueOnly) {
  auto ac = AccessControl::parse(R"({"tokens":[
      {"token":"aaaaaaaaaaaaaaaa","role":"read","name":"wall"},
      {"token":"bbbbbbbbbbbbbbbbbb","role":"operator","name":"duty"}]})",
                                 "t");
  EXPECT_FALSE(ac.open());
  EXPECT_EQ(ac.size(), 2u);
  ASSERT_NE(ac.find("aaaaaaaaaaaaaaaa"), nullptr);
  EXPECT_EQ(ac.find("aaaaaaaaaaaaaaaa")->role, Role::Read);
  EXPECT_EQ(ac.find("bbbbbbbbbbbbbbbbbb")->name, "duty");
  EXPECT_EQ(ac.find("bbbbbbbbbbbbbbbbbb")->role, Role::Operator);
  EXPECT_EQ(ac.find("aaaaaaaaaaaaaaa"), nullptr);    // a prefix
  EXPECT_EQ(ac.find("aaaaaaaaaaaaaaaaa"), nullptr);  // longer
  EXPECT_EQ(ac.find(""), nullptr);
  EXPECT_TRUE(AccessControl().open());
}

TEST(FeedAccess, RefusesBadFilesWithoutQuotingTheToken) {
  const std::string secret = "s3cret-s3cret-s3cret";
  for (const std::string& text :
       {std::string(R"({"tokens":[{"token":")") + secret + R"(","role":"root","name":"x"}]})",
        std::string(R"({"tokens":[{"token":")") + secret + R"(","role":"read","name":"x","extra":1}]})",
        std::string(R"({"tokens":[{"token":")") + secret + R"(","role":"read","name":""}]})",
        std::string(R"({"tokens":[{"token":")") + secret + R"( x","role":"read","name":"n"}]})",
        std::string(R"({"tokens":[{"token":")") + secret + R"(","role":"read","name":"a"},{"token":")" + secret +
            R"(","role":"read","name":"b"}]})",
        std::string(R"({"tokens":[{"token":")") + secret,  // broken JSON
        std::string(R"({"tokens":{}})"), std::string(R"([])")}) {
    try {
      AccessControl::parse(text, "tokens file f");
      ADD_FAILURE() << "accepted: " << text;
    } catch (const AccessError& e) {
      EXPECT_EQ(std::string(e.what()).find("s3cret"), std::string::npos) << e.what();
      EXPECT_EQ(std::string(e.what()).rfind("tokens file f", 0), 0u) << e.what();
    }
  }
}

TEST(FeedAccess, RefusesAFileOtherUsersCanRead) {
  test::TempDir dir;
  auto file = dir.path() / "tokens.json";
  std::ofstream(file) << R"({"tokens":[{"token":"aaaaaaaaaaaaaaaa","role":"read","name":"wall"}]})";
  namespace fs = std::filesystem;
  fs::permissions(file, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
  EXPECT_EQ(AccessControl::load(file).size(), 1u);  // group-readable is the operator's choice
  fs::permissions(file, fs::perms::owner_read | fs::perms::owner_write | fs::perms::others_read);
  try {
    AccessControl::load(file);
    ADD_FAILURE() << "accepted a world-readable tokens file";
  } catch (const AccessError& e) {
    EXPECT_NE(std::string(e.what()).find("mode 0604"), std::string::npos) << e.what();
  }
  EXPECT_THROW(AccessControl::load(dir.path() / "missing.json"), AccessError);
  EXPECT_THROW(AccessControl::load(dir.path()), AccessError);  // a directory
}

TEST(FeedAccess, ParsesBearerHeaders) {
  EXPECT_EQ(bearer_token(with_auth("Bearer abc")).value_or(""), "abc");
  EXPECT_EQ(bearer_token(with_auth("bearer   abc  ")).value_or(""), "abc");
  EXPECT_FALSE(bearer_token(with_auth("Basic abc")));
  EXPECT_FALSE(bearer_token(with_auth("Bearer ")));
  EXPECT_FALSE(bearer_token(HttpRequest{http::verb::get, "/", 11}));
}

// ---- helpers -----------------------------------------------------------------------------

TEST(FeedHelpers, QueryStringsArePercentDecoded) {
  auto q = parse_query("a=1&b=x%2By&c=hello+world&d&e=%zz&&a=2&token=ab%3D%3D");
  EXPECT_EQ(q["a"], "2");
  EXPECT_EQ(q["b"], "x+y");
  EXPECT_EQ(q["c"], "hello world");
  EXPECT_EQ(q["d"], "");
  EXPECT_EQ(q["e"], "%zz");
  EXPECT_EQ(q["token"], "ab==");
  EXPECT_TRUE(parse_query("").empty());
}

TEST(FeedHelpers, CsvFieldsAreQuotedWhenNeeded) {
  EXPECT_EQ(csv_field("Bamako"), "Bamako");
  EXPECT_EQ(csv_field("Bonaire, Sint Eustatius"), "\"Bonaire, Sint Eustatius\"");
  EXPECT_EQ(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(csv_field("two\nlines"), "\"two\nlines\"");
}

TEST(FeedMetrics, HistogramBucketsAreCumulativeAndInclusive) {
  LatencyHistogram h;
  for (std::int64_t ms : {-20, 0, 1, 2, 5, 6, 999, 1000, 60000, 60001, 3'600'000}) h.observe_ms(ms);
  EXPECT_EQ(h.count(), 11u);
  EXPECT_EQ(h.cumulative(0), 3u);    // <= 1 ms: -20 (as 0), 0, 1
  EXPECT_EQ(h.cumulative(1), 4u);    // <= 2.5 ms
  EXPECT_EQ(h.cumulative(2), 5u);    // <= 5 ms
  EXPECT_EQ(h.cumulative(3), 6u);    // <= 10 ms
  EXPECT_EQ(h.cumulative(9), 8u);    // <= 1 s
  EXPECT_EQ(h.cumulative(14), 9u);   // <= 60 s
  EXPECT_EQ(h.cumulative(15), 11u);  // +Inf
  EXPECT_DOUBLE_EQ(h.sum_seconds(), (0 + 0 + 1 + 2 + 5 + 6 + 999 + 1000 + 60000 + 60001 + 3'600'000) / 1000.0);
}

TEST(FeedMetrics, ExpositionTextFormat) {
  MetricsText m;
  m.family("x_total", "counter", "Things.");
  m.sample("x_total", MetricsText::label("reason", "a\"b\\c\nd"), std::uint64_t{3});
  m.sample("x_total", "", 1.5);
  LatencyHistogram h;
  h.observe_ms(7);
  m.histogram("lat_seconds", "Latency.", h);
  const std::string& t = m.text();
  EXPECT_NE(t.find("# HELP x_total Things.\n# TYPE x_total counter\n"), std::string::npos);
  EXPECT_NE(t.find("x_total{reason=\"a\\\"b\\\\c\\nd\"} 3\n"), std::string::npos) << t;
  EXPECT_NE(t.find("x_total 1.5\n"), std::string::npos);
  EXPECT_NE(t.find("lat_seconds_bucket{le=\"0.001\"} 0\n"), std::string::npos) << t;
  EXPECT_NE(t.find("lat_seconds_bucket{le=\"0.005\"} 0\n"), std::string::npos) << t;
  EXPECT_NE(t.find("lat_seconds_bucket{le=\"0.01\"} 1\n"), std::string::npos) << t;
  EXPECT_NE(t.find("lat_seconds_bucket{le=\"60\"} 1\n"), std::string::npos) << t;
  EXPECT_NE(t.find("lat_seconds_bucket{le=\"+Inf\"} 1\n"), std::string::npos) << t;
  EXPECT_NE(t.find("lat_seconds_sum 0.007\n"), std::string::npos) << t;
  EXPECT_NE(t.find("lat_seconds_count 1\n"), std::string::npos) << t;
}

// ---- the figure registry ------------------------------------------------------------------

namespace {

// The value of the sample `series` (name and labels, as written) in exposition text; -1: absent.
double sample_value(const std::string& text, const std::string& series) {
  auto at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + series.size() + 2));
}

}  // namespace

TEST(FeedFigures, AFigureRegisteredOnceShowsInBothRenderingsWithTheSameValue) {
  std::uint64_t accepted = 0, wire = 0, plain = 0, paused_ms = 0, tracked = 0, known = 0;
  double age_s = 0;
  FigureRegistry r;
  r.family("x_accepted_total", MetricKind::Counter, "Accepted.").figure("accepted", "", [&] { return accepted; });
  r.stats_only("tracked", [&] { return tracked; });
  r.family("x_bytes_total", MetricKind::Counter, "Bytes by form.")
      .figure("bytes/wire", MetricsText::label("form", "wire"), [&] { return wire; });
  r.family("x_known", MetricKind::Gauge, "Known.").sample("", [&] { return known; });
  r.family("x_paused_seconds_total", MetricKind::Counter, "Paused.")
      .figure(
          "paused_ms", "", [&] { return paused_ms; }, 1000);
  r.family("x_age_seconds", MetricKind::Gauge, "Age.").figure("age_s", "", [&] { return age_s; });
  // Declared again: the same family, so its samples stay together under one HELP.
  r.family("x_bytes_total", MetricKind::Counter, "Bytes by form.")
      .figure("bytes/plain", MetricsText::label("form", "plain"), [&] { return plain; });

  accepted = 42, wire = 7, plain = 19, paused_ms = 1234, tracked = 3, known = 5, age_s = 2.5;
  const json stats = r.stats();
  MetricsText m;
  r.write_metrics(m);
  const std::string text = "\n" + m.text();

  EXPECT_EQ(stats.at("accepted"), 42u);
  EXPECT_EQ(sample_value(text, "x_accepted_total"), 42);
  EXPECT_EQ(stats.at("bytes").at("wire"), 7u);
  EXPECT_EQ(sample_value(text, "x_bytes_total{form=\"wire\"}"), 7);
  EXPECT_EQ(stats.at("bytes").at("plain"), 19u);
  EXPECT_EQ(sample_value(text, "x_bytes_total{form=\"plain\"}"), 19);
  EXPECT_EQ(stats.at("paused_ms"), 1234u);  // the stats in milliseconds, the metric in seconds
  EXPECT_EQ(sample_value(text, "x_paused_seconds_total"), 1.234);
  EXPECT_TRUE(stats.at("age_s").is_number_float());  // a fraction stays one; a count stays whole
  EXPECT_TRUE(stats.at("accepted").is_number_unsigned());
  EXPECT_EQ(sample_value(text, "x_age_seconds"), 2.5);
  // Each rendering shows only what is meant for it.
  EXPECT_EQ(stats.at("tracked"), 3u);
  EXPECT_EQ(text.find("tracked"), std::string::npos) << text;
  EXPECT_EQ(sample_value(text, "x_known"), 5);
  EXPECT_EQ(stats.size(), 5u) << stats.dump();  // accepted, tracked, bytes, paused_ms, age_s
  // One HELP and TYPE per family, before all of its samples, in the order first declared.
  EXPECT_NE(text.find("# HELP x_bytes_total Bytes by form.\n# TYPE x_bytes_total counter\n"
                      "x_bytes_total{form=\"wire\"} 7\nx_bytes_total{form=\"plain\"} 19\n"
                      "# HELP x_known Known.\n"),
            std::string::npos)
      << text;

  // Read when rendered, not when registered.
  accepted = 43;
  MetricsText again;
  r.write_metrics(again);
  EXPECT_EQ(r.stats().at("accepted"), 43u);
  EXPECT_EQ(sample_value("\n" + again.text(), "x_accepted_total"), 43);
}

TEST(FeedFigures, ComputedSamplesAndHistogramsShowOnlyInMetrics) {
  LatencyHistogram h;
  h.observe_ms(7);
  FigureRegistry r;
  r.family("x_status", MetricKind::Gauge, "Status by goal.").samples([](const FigureRegistry::Emit& emit) {
    emit(MetricsText::label("goal", "1"), std::uint64_t{2});
    emit(MetricsText::label("goal", "2"), 0.5);
  });
  r.histogram("x_latency_seconds", "Latency.", h);
  MetricsText m;
  r.write_metrics(m);
  const std::string text = "\n" + m.text();
  EXPECT_EQ(sample_value(text, "x_status{goal=\"1\"}"), 2);
  EXPECT_EQ(sample_value(text, "x_status{goal=\"2\"}"), 0.5);
  EXPECT_NE(text.find("# TYPE x_latency_seconds histogram\n"), std::string::npos) << text;
  EXPECT_EQ(sample_value(text, "x_latency_seconds_count"), 1);
  EXPECT_TRUE(r.stats().empty());
}

// ---- the ingest hook -------------------------------------------------------------------------

TEST(FeedIngestLatency, CalledOncePerAppliedLiveEvent) {
  IndicatorCatalogue cat = IndicatorCatalogue::load(test::catalogue_path());
  IndicatorState state{cat};
  AgentTable agents{cat};
  BatchIngest ingest{cat, agents, state, quiet()};
  std::vector<std::int64_t> seen;
  ingest.on_applied_latency = [&](std::int64_t ms) { seen.push_back(ms); };
  const std::string topic = "postwatch/v1/sub-saharan-africa/bamako/a1/events";
  const std::int64_t now = 10'000'000;
  auto feed = [&](EventBatch b) {
    auto bytes = encode_batch(b);
    return ingest.on_message(topic, bytes, now);
  };
  EventBatch b{"a1", "bamako", now, {}};
  b.events.push_back({1, now - 250, "terrorism_threat_level", ValueKind::Level, 3, "", "", {}});
  b.events.push_back({2, now - 1000, "terrorism_threat_level", ValueKind::Level, 4, "", "", {}});
  b.events.push_back({3, now - 5, "no_such_indicator", ValueKind::Level, 4, "", "", {}});        // refused
  b.events.push_back({4, now - 5, "terrorism_threat_level", ValueKind::Level, 99, "", "", {}});  // bad value
  b.events.push_back({5, now - 60 * 60 * 1000, "terrorism_threat_level", ValueKind::Level, 2, "", "", {}});  // late
  EXPECT_EQ(feed(b), 3u);  // applied as new: 1, 2 and the late 5
  EXPECT_EQ(seen, (std::vector<std::int64_t>{250, 1000}));
  EXPECT_EQ(feed(b), 0u);  // all duplicates now
  EXPECT_EQ(seen.size(), 2u);
  // Replay does not call it.
  EventView e;
  e.seq = 6;
  e.observed_at_ms = now;
  e.indicator = "terrorism_threat_level";
  e.number = 2;
  ingest.replay("bamako", "a1", e, now);
  EXPECT_EQ(seen.size(), 2u);
  // Unset: nothing breaks.
  ingest.on_applied_latency = nullptr;
  EventBatch c{"a1", "bamako", now, {{7, now, "terrorism_threat_level", ValueKind::Level, 1, "", "", {}}}};
  EXPECT_EQ(feed(c), 1u);
}

// ---- embedded files -------------------------------------------------------------------------

TEST(FeedAssets, DashboardAndOpenApiAreEmbedded) {
  for (auto* path : {"/", "/assets/app.js", "/assets/style.css", "/assets/favicon.svg", "/api/v1/openapi.json"}) {
    const EmbeddedAsset* a = find_embedded_asset(path);
    ASSERT_NE(a, nullptr) << path;
    EXPECT_GT(a->body.size(), 100u) << path;
    EXPECT_EQ(a->etag.front(), '"');
  }
  EXPECT_EQ(find_embedded_asset("/nope"), nullptr);
  auto spec = json::parse(find_embedded_asset("/api/v1/openapi.json")->body, nullptr, false);
  ASSERT_FALSE(spec.is_discarded()) << "openapi.json is not valid JSON";
  EXPECT_EQ(spec["openapi"], "3.0.3");
  // The page refers only to files the binary serves (no CDN: the network is closed).
  std::string html(find_embedded_asset("/")->body);
  for (auto* ref : {"/assets/app.js", "/assets/style.css", "/assets/favicon.svg"})
    EXPECT_NE(html.find(ref), std::string::npos) << ref;
  EXPECT_EQ(html.find("http://"), std::string::npos);
  EXPECT_EQ(html.find("https://"), std::string::npos);
}

// ---- the live stream in-process ---------------------------------------------------------------

namespace {

namespace beast = boost::beast;
namespace websocket = beast::websocket;

// An HTTP server with only the live stream, on its own io_context thread.
class StreamFixture {
 public:
  explicit StreamFixture(LiveStreamOptions options)
      : stream_(std::make_shared<LiveStream>(quiet(), options, [] { return std::string(R"({"type":"snapshot"})"); })),
        server_(io_, quiet(),
                HttpCallbacks{[](const HttpRequest&) {
                                return HttpResponse{http::status::not_found, 11};
                              },
                              {},
                              stream_,
                              {}}) {
    server_.listen("127.0.0.1", 0);
    thread_ = std::thread([this] { io_.run(); });
  }
  template <class F>
  auto on_io(F f) {
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto fut = task.get_future();
    boost::asio::post(io_, [&task] { task(); });
    return fut.get();
  }
  ~StreamFixture() {
    on_io([this] {
      server_.close();
      stream_->close_all();
      return 0;
    });
    work_.reset();
    io_.stop();
    thread_.join();
  }
  unsigned short port() const { return server_.port(); }
  LiveStream& stream() { return *stream_; }

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_{io_.get_executor()};
  std::shared_ptr<LiveStream> stream_;
  HttpServer server_;
  std::thread thread_;
};

struct Client {
  boost::asio::io_context io;
  websocket::stream<beast::tcp_stream> ws{io};
  explicit Client(unsigned short port) {
    beast::get_lowest_layer(ws).connect({boost::asio::ip::make_address("127.0.0.1"), port});
    ws.handshake("127.0.0.1", "/api/v1/stream");
  }
  std::string read() {
    beast::flat_buffer b;
    ws.read(b);
    return beast::buffers_to_string(b.data());
  }
};

}  // namespace

TEST(FeedLiveStream, ClientGetsTheSnapshotThenEveryMessageInOrder) {
  StreamFixture f({/*max_queue*/ 8, /*max_clients*/ 4, std::chrono::milliseconds(30000)});
  Client c(f.port());
  EXPECT_EQ(c.read(), R"({"type":"snapshot"})");
  ASSERT_TRUE(
      test::wait_until([&] { return f.on_io([&] { return f.stream().clients(); }) == 1; }, std::chrono::seconds(5)));
  f.on_io([&] {
    for (int i = 0; i < 8; ++i) f.stream().broadcast("m" + std::to_string(i));
    return 0;
  });
  for (int i = 0; i < 8; ++i) EXPECT_EQ(c.read(), "m" + std::to_string(i));
  auto stats = f.on_io([&] { return f.stream().stats(); });
  EXPECT_EQ(stats.clients, 1u);
  EXPECT_EQ(stats.connected_total, 1u);
  EXPECT_EQ(stats.dropped_slow_total, 0u);
  EXPECT_EQ(stats.messages_total, 8u);
}

TEST(FeedLiveStream, AClientTooFarBehindIsDroppedAndTheOthersCarryOn) {
  StreamFixture f({/*max_queue*/ 4, /*max_clients*/ 4, std::chrono::milliseconds(30000)});
  Client slow(f.port()), fast(f.port());
  ASSERT_EQ(slow.read(), R"({"type":"snapshot"})");
  ASSERT_EQ(fast.read(), R"({"type":"snapshot"})");
  ASSERT_TRUE(
      test::wait_until([&] { return f.on_io([&] { return f.stream().clients(); }) == 2; }, std::chrono::seconds(5)));
  // Five messages in one go: the first is being written, the rest wait; the fifth makes the
  // queue longer than 4 for whichever client is still busy. Both are: no write completes
  // while this handler runs, so both queues overflow and both clients are dropped.
  f.on_io([&] {
    for (int i = 0; i < 5; ++i) f.stream().broadcast(std::string(100, 'x'));
    return 0;
  });
  auto stats = f.on_io([&] { return f.stream().stats(); });
  EXPECT_EQ(stats.dropped_slow_total, 2u);
  EXPECT_EQ(stats.clients, 0u);
  // The dropped client's connection ends (after whatever had been written).
  beast::error_code ec;
  beast::flat_buffer b;
  for (int i = 0; i < 10 && !ec; ++i) {
    slow.ws.read(b, ec);
    b.consume(b.size());
  }
  EXPECT_TRUE(ec);

  // A client that keeps up is never dropped: three at a time fit, even while the previous
  // message still counts as being written (its completion may not have run yet).
  Client ok(f.port());
  ASSERT_EQ(ok.read(), R"({"type":"snapshot"})");
  ASSERT_TRUE(
      test::wait_until([&] { return f.on_io([&] { return f.stream().clients(); }) == 1; }, std::chrono::seconds(5)));
  for (int round = 0; round < 20; ++round) {
    f.on_io([&] {
      for (int i = 0; i < 3; ++i) f.stream().broadcast("r" + std::to_string(round) + "-" + std::to_string(i));
      return 0;
    });
    for (int i = 0; i < 3; ++i) ASSERT_EQ(ok.read(), "r" + std::to_string(round) + "-" + std::to_string(i));
  }
  EXPECT_EQ(f.on_io([&] { return f.stream().stats().dropped_slow_total; }), 2u);
}

TEST(FeedLiveStream, CloseAllSendsGoingAway) {
  StreamFixture f({8, 4, std::chrono::milliseconds(30000)});
  Client c(f.port());
  ASSERT_EQ(c.read(), R"({"type":"snapshot"})");
  ASSERT_TRUE(
      test::wait_until([&] { return f.on_io([&] { return f.stream().clients(); }) == 1; }, std::chrono::seconds(5)));
  f.on_io([&] {
    f.stream().close_all();
    return 0;
  });
  beast::error_code ec;
  beast::flat_buffer b;
  c.ws.read(b, ec);
  EXPECT_EQ(ec, websocket::error::closed);
  EXPECT_EQ(c.ws.reason().code, websocket::close_code::going_away);
  EXPECT_TRUE(
      test::wait_until([&] { return f.on_io([&] { return f.stream().clients(); }) == 0; }, std::chrono::seconds(5)));
}

TEST(FeedLiveStream, PingsKeepAQuietClientAndDropADeadOne) {
  // Idle timeout 400 ms: a ping after 200 ms. A client that reads answers pings automatically.
  StreamFixture f({8, 4, std::chrono::milliseconds(400)});
  Client alive(f.port());
  ASSERT_EQ(alive.read(), R"({"type":"snapshot"})");
  Client dead(f.port());
  ASSERT_EQ(dead.read(), R"({"type":"snapshot"})");  // then never reads again: it cannot answer pings
  // `alive` waits for a message sent after several idle periods: it must still be connected.
  std::thread later([&] {
    test::wait_until([&] { return f.on_io([&] { return f.stream().clients(); }) == 1; }, std::chrono::seconds(10));
    f.on_io([&] {
      f.stream().broadcast("still here");
      return 0;
    });
  });
  EXPECT_EQ(alive.read(), "still here");
  later.join();
  EXPECT_EQ(f.on_io([&] { return f.stream().clients(); }), 1u);
}
