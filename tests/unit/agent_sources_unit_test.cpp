// The agent's local inputs without a broker: JSON-lines/CSV parsing, the local API's answers,
// the drop directory's all-or-nothing ingest, script probes (exit, timeout, garbage), the
// device probe readers, and the config sections that enable them.
#include "postwatch/agent/agent_config.hpp"
#include "postwatch/agent/device_probes.hpp"
#include "postwatch/agent/drop_directory.hpp"
#include "postwatch/agent/event_file.hpp"
#include "postwatch/agent/local_api.hpp"
#include "postwatch/agent/script_probe.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

using namespace postwatch;
using namespace postwatch::agent;
using namespace postwatch::test;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::shared_ptr<const IndicatorCatalogue> catalogue() {
  static auto c = std::make_shared<const IndicatorCatalogue>(IndicatorCatalogue::load(catalogue_path()));
  return c;
}

std::shared_ptr<spdlog::logger> quiet_log() {
  return std::make_shared<spdlog::logger>("test", std::make_shared<spdlog::sinks::null_sink_mt>());
}

// Records what a source submits; refuses once `capacity` events were accepted (a full spool).
struct RecordingSink {
  std::mutex mu;
  std::vector<IndicatorEvent> events;
  std::size_t capacity = SIZE_MAX;
  EventSink sink() {
    return [this](IndicatorEvent e) {
      std::lock_guard lk(mu);
      SubmitResult r;
      if (auto err = validate_event(*catalogue(), e); !err.empty()) {
        r.error = err;
      } else if (events.size() >= capacity) {
        r.error = "spool full (spool.max_bytes reached, overflow policy refuse)";
      } else {
        events.push_back(std::move(e));
        r.accepted = true;
        r.seq = events.size();
      }
      return r;
    };
  }
  std::size_t size() {
    std::lock_guard lk(mu);
    return events.size();
  }
};

void write_file(const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; }
std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace

// --- JSON lines and CSV -------------------------------------------------------------------

TEST(EventFile, JsonLinesGoodFile) {
  auto parsed = parse_event_lines(
      "# comment\n"
      "{\"indicator\":\"terrorism_threat_level\",\"value\":3}\n"
      "\n"
      "{\"indicator\":\"cyber_incidents\",\"value\":2,\"observed_at_ms\":1700000000000,\"note\":\"x\"}\n",
      EventFileFormat::JsonLines, *catalogue());
  ASSERT_TRUE(parsed.ok());
  ASSERT_EQ(parsed.events.size(), 2u);
  EXPECT_EQ(parsed.lines, (std::vector<std::size_t>{2, 4}));
  EXPECT_EQ(parsed.events[1].observed_at_ms, 1700000000000);
  EXPECT_EQ(parsed.events[1].note, "x");
}

TEST(EventFile, JsonLinesEveryBadLineIsNamed) {
  auto parsed = parse_event_lines(
      "{\"indicator\":\"terrorism_threat_level\",\"value\":3}\n"
      "{\"indicator\":\"no_such_thing\",\"value\":1}\n"
      "{\"indicator\":\"terrorism_threat_level\",\"value\":9}\n"
      "{\"indicator\":\"terrorism_threat_level\",\"value\":\"high\"}\n"
      "not json\n",
      EventFileFormat::JsonLines, *catalogue());
  ASSERT_EQ(parsed.errors.size(), 4u);
  EXPECT_EQ(parsed.errors[0].line, 2u);
  EXPECT_NE(parsed.errors[0].message.find("unknown indicator 'no_such_thing'"), std::string::npos);
  EXPECT_EQ(parsed.errors[1].line, 3u);
  EXPECT_NE(parsed.errors[1].message.find("outside [1, 5]"), std::string::npos) << parsed.errors[1].message;
  EXPECT_NE(parsed.errors[2].message.find("must be a number"), std::string::npos) << parsed.errors[2].message;
  EXPECT_EQ(parsed.errors[3].message, "not valid JSON");
}

TEST(EventFile, CsvWithHeaderQuotesAndOptionalColumns) {
  auto parsed = parse_event_lines(
      "\xEF\xBB\xBFindicator,value,observed_at_ms,note\r\n"
      "terrorism_threat_level,4,1700000000000,\"raised, after \"\"incident\"\"\"\r\n"
      "cyber_incidents,2\n"
      "election_interference,true,,\n"
      "situation_note,\"calm, markets open\"\n",
      EventFileFormat::Csv, *catalogue());
  ASSERT_TRUE(parsed.ok()) << parsed.errors[0].message;
  ASSERT_EQ(parsed.events.size(), 4u);
  EXPECT_EQ(parsed.events[0].number, 4);
  EXPECT_EQ(parsed.events[0].note, "raised, after \"incident\"");
  EXPECT_EQ(parsed.events[0].observed_at_ms, 1700000000000);
  EXPECT_EQ(parsed.events[1].observed_at_ms, 0);  // now, at submit
  EXPECT_EQ(parsed.events[2].number, 1);
  EXPECT_EQ(parsed.events[3].kind, ValueKind::Text);
  EXPECT_EQ(parsed.events[3].text, "calm, markets open");
}

TEST(EventFile, CsvBadRows) {
  auto parsed = parse_event_lines(
      "terrorism_threat_level\n"
      "terrorism_threat_level,abc\n"
      "terrorism_threat_level,3,yesterday\n"
      "terrorism_threat_level,\"3\n"
      "terrorism_threat_level,2.5\n"
      "unknown_x,1\n"
      "terrorism_threat_level,3,1,a,b\n",
      EventFileFormat::Csv, *catalogue());
  ASSERT_EQ(parsed.errors.size(), 7u);
  EXPECT_TRUE(parsed.events.empty());
  EXPECT_NE(parsed.errors[0].message.find("expected 2 to 4 columns"), std::string::npos);
  EXPECT_NE(parsed.errors[1].message.find("'abc' is not a number"), std::string::npos);
  EXPECT_NE(parsed.errors[2].message.find("observed_at_ms 'yesterday'"), std::string::npos);
  EXPECT_NE(parsed.errors[3].message.find("unclosed quote"), std::string::npos);
  EXPECT_NE(parsed.errors[4].message.find("whole numbers"), std::string::npos);
  EXPECT_NE(parsed.errors[5].message.find("unknown indicator 'unknown_x'"), std::string::npos);
  EXPECT_NE(parsed.errors[6].message.find("got 5"), std::string::npos);
}

TEST(EventFile, FormatByExtension) {
  EXPECT_EQ(event_file_format("a.jsonl"), EventFileFormat::JsonLines);
  EXPECT_EQ(event_file_format("a.NDJSON"), EventFileFormat::JsonLines);
  EXPECT_EQ(event_file_format("a.csv"), EventFileFormat::Csv);
  EXPECT_EQ(event_file_format("a.xlsx"), EventFileFormat::Unknown);
}

// --- local API ----------------------------------------------------------------------------

TEST(LocalApi, BatchAnswersPerEventInOrder) {
  RecordingSink sink;
  LocalApiServer api(LocalApiConfig{}, catalogue(), sink.sink(), quiet_log());
  auto answer = json::parse(api.answer(
      R"([{"indicator":"terrorism_threat_level","value":2},{"indicator":"nope","value":1},)"
      R"({"indicator":"terrorism_threat_level","value":true},{"indicator":"terrorism_threat_level","value":7},7])"));
  ASSERT_EQ(answer["results"].size(), 5u) << answer.dump();
  EXPECT_EQ(answer["results"][0], (json{{"accepted", true}, {"seq", 1}}));
  EXPECT_EQ(answer["results"][1]["error"], "unknown indicator 'nope'");
  EXPECT_NE(answer["results"][2]["error"].get<std::string>().find("takes a number"), std::string::npos);
  EXPECT_NE(answer["results"][3]["error"].get<std::string>().find("outside"), std::string::npos);
  EXPECT_EQ(answer["results"][4]["error"], "expected a JSON object");
  EXPECT_EQ(sink.size(), 1u);
}

TEST(LocalApi, SpoolFullIsReportedPerEvent) {
  RecordingSink sink;
  sink.capacity = 1;
  LocalApiServer api(LocalApiConfig{}, catalogue(), sink.sink(), quiet_log());
  auto answer = json::parse(
      api.answer(R"([{"indicator":"cyber_incidents","value":1},{"indicator":"cyber_incidents","value":2}])"));
  EXPECT_TRUE(answer["results"][0]["accepted"]);
  EXPECT_NE(answer["results"][1]["error"].get<std::string>().find("spool full"), std::string::npos);
}

TEST(LocalApi, GarbageAndOversizedBatchesAreRefusedWhole) {
  RecordingSink sink;
  LocalApiConfig cfg;
  cfg.max_batch_events = 2;
  LocalApiServer api(cfg, catalogue(), sink.sink(), quiet_log());
  auto bad = json::parse(api.answer("{not json"));
  EXPECT_NE(bad["error"].get<std::string>().find("not valid JSON"), std::string::npos);
  auto big = json::parse(
      api.answer(R"([{"indicator":"cyber_incidents","value":1},)"
                 R"({"indicator":"cyber_incidents","value":1},{"indicator":"cyber_incidents","value":1}])"));
  EXPECT_NE(big["error"].get<std::string>().find("max_batch_events"), std::string::npos);
  EXPECT_EQ(sink.size(), 0u);
}

TEST(LocalApi, OverTheSocketWithModeAndStaleSocketReplaced) {
  TempDir dir;
  RecordingSink sink;
  LocalApiConfig cfg;
  cfg.enabled = true;
  cfg.socket = dir.path() / "run" / "agent.sock";
  cfg.mode = 0660;
  {
    LocalApiServer first(cfg, catalogue(), sink.sink(), quiet_log());
    first.start();
    // Simulate a crash: the socket file stays behind.
    fs::path stale = cfg.socket;
    first.stop();
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, stale.c_str(), sizeof addr.sun_path - 1);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ::close(fd);
  }
  LocalApiServer api(cfg, catalogue(), sink.sink(), quiet_log());
  api.start();
  struct stat st {};
  ASSERT_EQ(::stat(cfg.socket.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  auto answer = json::parse(
      local_api_request(cfg.socket, R"({"indicator":"cyber_incidents","value":3})", std::chrono::seconds(5)));
  EXPECT_TRUE(answer["results"][0]["accepted"]) << answer.dump();
  auto second = json::parse(local_api_request(cfg.socket, "[]", std::chrono::seconds(5)));
  EXPECT_TRUE(second["results"].empty());
  api.stop();
  EXPECT_FALSE(fs::exists(cfg.socket));
  EXPECT_THROW(local_api_request(cfg.socket, "{}", std::chrono::seconds(1)), std::runtime_error);
}

TEST(LocalApi, RefusesToReplaceAFileThatIsNotASocket) {
  TempDir dir;
  RecordingSink sink;
  LocalApiConfig cfg;
  cfg.socket = dir.path() / "agent.sock";
  write_file(cfg.socket, "precious");
  LocalApiServer api(cfg, catalogue(), sink.sink(), quiet_log());
  EXPECT_THROW(api.start(), std::runtime_error);
  EXPECT_EQ(read_file(cfg.socket), "precious");
}

// --- drop directory -----------------------------------------------------------------------

class DropDirTest : public ::testing::Test {
 protected:
  TempDir dir;
  RecordingSink sink;
  DropDirConfig cfg = [this] {
    DropDirConfig c;
    c.enabled = true;
    c.dir = dir.path() / "drop";
    c.min_age = std::chrono::seconds(0);
    return c;
  }();
  std::unique_ptr<DropDirectoryWatcher> watcher() {
    auto w = std::make_unique<DropDirectoryWatcher>(cfg, catalogue(), sink.sink(), quiet_log());
    fs::create_directories(cfg.dir);
    for (const char* sub : {"processing", "done", "failed"}) fs::create_directories(cfg.dir / sub);
    return w;
  }
};

TEST_F(DropDirTest, GoodFilesAreIngestedOnceAndMovedToDone) {
  auto w = watcher();
  write_file(cfg.dir / "a.jsonl",
             "{\"indicator\":\"cyber_incidents\",\"value\":1}\n"
             "{\"indicator\":\"cyber_incidents\",\"value\":2}\n");
  write_file(cfg.dir / "b.csv", "indicator,value\nterrorism_threat_level,3\n");
  EXPECT_EQ(w->scan_once(), 2u);
  EXPECT_EQ(sink.size(), 3u);
  EXPECT_TRUE(fs::exists(cfg.dir / "done" / "a.jsonl"));
  EXPECT_TRUE(fs::exists(cfg.dir / "done" / "b.csv"));
  EXPECT_FALSE(fs::exists(cfg.dir / "a.jsonl"));
  EXPECT_EQ(w->scan_once(), 0u);  // nothing twice
  EXPECT_EQ(sink.size(), 3u);
  // The same name dropped again is a new file, kept beside the first.
  write_file(cfg.dir / "a.jsonl", "{\"indicator\":\"cyber_incidents\",\"value\":5}\n");
  EXPECT_EQ(w->scan_once(), 1u);
  EXPECT_EQ(sink.size(), 4u);
  EXPECT_TRUE(fs::exists(cfg.dir / "done" / "a.1.jsonl"));
}

TEST_F(DropDirTest, OneBadLineRefusesTheWholeFileWithAReason) {
  auto w = watcher();
  write_file(cfg.dir / "mixed.csv",
             "cyber_incidents,1\nnot_an_indicator,2\ncyber_incidents,1\nterrorism_threat_level,0\n");
  write_file(cfg.dir / "report.xlsx", "PK...");
  write_file(cfg.dir / "empty.jsonl", "# nothing\n");
  EXPECT_EQ(w->scan_once(), 3u);
  EXPECT_EQ(sink.size(), 0u);  // nothing half-ingested
  ASSERT_TRUE(fs::exists(cfg.dir / "failed" / "mixed.csv"));
  auto reason = read_file(cfg.dir / "failed" / "mixed.csv.reason");
  EXPECT_NE(reason.find("nothing was ingested: 2 bad line(s)"), std::string::npos) << reason;
  EXPECT_NE(reason.find("line 2: unknown indicator 'not_an_indicator'"), std::string::npos) << reason;
  EXPECT_NE(reason.find("line 4: value 0 is outside [1, 5]"), std::string::npos) << reason;
  EXPECT_NE(read_file(cfg.dir / "failed" / "report.xlsx.reason").find("unknown file type"), std::string::npos);
  EXPECT_NE(read_file(cfg.dir / "failed" / "empty.jsonl.reason").find("holds no events"), std::string::npos);
  EXPECT_EQ(w->stats().files_failed, 3u);
}

TEST_F(DropDirTest, FilesBeingCopiedAreLeftAlone) {
  cfg.min_age = std::chrono::seconds(3600);
  auto w = watcher();
  write_file(cfg.dir / "fresh.jsonl", "{\"indicator\":\"cyber_incidents\",\"value\":1}\n");
  write_file(cfg.dir / ".hidden.jsonl", "{\"indicator\":\"cyber_incidents\",\"value\":1}\n");
  write_file(cfg.dir / "copy.jsonl.part", "{\"indicator\":\"cyber_incidents\",\"value\":1}\n");
  EXPECT_EQ(w->scan_once(), 0u);
  EXPECT_TRUE(fs::exists(cfg.dir / "fresh.jsonl"));
  EXPECT_EQ(sink.size(), 0u);
}

TEST_F(DropDirTest, SpoolFullPausesAndResumesWithoutDuplicates) {
  sink.capacity = 2;
  auto w = watcher();
  std::string text;
  for (int i = 1; i <= 5; ++i) text += "cyber_incidents," + std::to_string(i) + "\n";
  write_file(cfg.dir / "five.csv", text);
  EXPECT_EQ(w->scan_once(), 0u);
  EXPECT_EQ(sink.size(), 2u);
  EXPECT_TRUE(fs::exists(cfg.dir / "processing" / "five.csv"));
  sink.capacity = 100;
  EXPECT_EQ(w->scan_once(), 1u);
  ASSERT_EQ(sink.size(), 5u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(sink.events[i].number, i + 1);
  EXPECT_TRUE(fs::exists(cfg.dir / "done" / "five.csv"));
  EXPECT_FALSE(fs::exists(cfg.dir / "processing" / "five.csv.progress"));
}

TEST_F(DropDirTest, AClaimedFileLeftByACrashResumesFromItsProgress) {
  auto w = watcher();
  write_file(cfg.dir / "processing" / "crash.csv", "cyber_incidents,1\ncyber_incidents,2\ncyber_incidents,3\n");
  write_file(cfg.dir / "processing" / "crash.csv.progress", "00000000000000000002\n");
  EXPECT_EQ(w->scan_once(), 1u);
  ASSERT_EQ(sink.size(), 1u);
  EXPECT_EQ(sink.events[0].number, 3);
  EXPECT_TRUE(fs::exists(cfg.dir / "done" / "crash.csv"));
}

TEST_F(DropDirTest, WatcherThreadPicksUpFiles) {
  cfg.poll_interval = std::chrono::seconds(1);
  DropDirectoryWatcher w(cfg, catalogue(), sink.sink(), quiet_log());
  w.start();
  // Written under a .part name and renamed, as docs/deploy.md tells droppers to: with min_age 0 the
  // watcher may otherwise claim the file between its creation and its first write.
  write_file(cfg.dir / "late.jsonl.part", "{\"indicator\":\"cyber_incidents\",\"value\":1}\n");
  fs::rename(cfg.dir / "late.jsonl.part", cfg.dir / "late.jsonl");
  EXPECT_TRUE(wait_until([&] { return fs::exists(cfg.dir / "done" / "late.jsonl"); }, std::chrono::seconds(10)));
  w.stop();
  EXPECT_EQ(sink.size(), 1u);
}

// --- script probes ------------------------------------------------------------------------

TEST(ScriptProbeRun, ValueFromTheFirstLine) {
  auto run = run_command({"/bin/sh", "-c", "echo ' 42.5 '; echo ignored"}, std::chrono::seconds(5));
  IndicatorEvent ev;
  ASSERT_EQ(script_event(run, *catalogue()->find_indicator("mission_personnel_shortfall"), ev), "");
  EXPECT_EQ(ev.number, 42.5);
}

TEST(ScriptProbeRun, FailuresSayWhy) {
  const Indicator& level = *catalogue()->find_indicator("terrorism_threat_level");
  IndicatorEvent ev;
  auto exit3 = run_command({"/bin/sh", "-c", "echo 2; echo 'sensor offline' >&2; exit 3"}, std::chrono::seconds(5));
  EXPECT_EQ(script_event(exit3, level, ev), "exit status 3: sensor offline");
  auto garbage = run_command({"/bin/sh", "-c", "echo high"}, std::chrono::seconds(5));
  EXPECT_NE(script_event(garbage, level, ev).find("output 'high' is not a valid value"), std::string::npos);
  auto silent = run_command({"/bin/true"}, std::chrono::seconds(5));
  EXPECT_NE(script_event(silent, level, ev).find("no output"), std::string::npos);
  auto missing = run_command({"/nonexistent/probe"}, std::chrono::seconds(5));
  EXPECT_FALSE(missing.started);
  EXPECT_NE(script_event(missing, level, ev).find("cannot run /nonexistent/probe: No such file"), std::string::npos);
  auto out_of_range = run_command({"/bin/sh", "-c", "echo 9"}, std::chrono::seconds(5));
  EXPECT_EQ(script_event(out_of_range, level, ev), "");  // parsed; the range is the sink's to refuse
}

TEST(ScriptProbeRun, HangingScriptAndItsChildrenAreKilledAtTheTimeout) {
  TempDir dir;
  auto marker = dir.path() / "child.pid";
  auto start = std::chrono::steady_clock::now();
  // The child keeps stdout open: only killing the process group ends it.
  auto run = run_command({"/bin/sh", "-c", "sleep 30 & echo $! > " + marker.string() + "; sleep 30"},
                         std::chrono::milliseconds(500));
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(run.timed_out);
  EXPECT_LT(took, std::chrono::seconds(5));
  pid_t child = std::stoi(read_file(marker));
  // Gone, or a zombie waiting for whoever adopted it to reap it.
  auto dead = [&] {
    std::ifstream stat("/proc/" + std::to_string(child) + "/stat");
    std::string pid, comm, state;
    return !(stat >> pid >> comm >> state) || state == "Z";
  };
  EXPECT_TRUE(wait_until(dead, std::chrono::seconds(5)));
}

TEST(ScriptProbe, FailuresAreCountedAndReportedAsHealthEvents) {
  RecordingSink sink;
  ScriptProbeConfig cfg;
  cfg.indicator = "terrorism_threat_level";
  cfg.command = {"/bin/sh", "-c", "sleep 10"};
  cfg.timeout = std::chrono::seconds(1);
  ScriptProbe hanging(cfg, catalogue(), sink.sink(), quiet_log());
  // Before its first run ends a probe cannot be judged: a bundle on trial waits for it.
  EXPECT_FALSE(hanging.has_result());
  EXPECT_EQ(hanging.problem(), "");
  EXPECT_FALSE(hanging.run_once());
  EXPECT_TRUE(hanging.has_result());
  cfg.command = {"/bin/sh", "-c", "echo 9"};
  ScriptProbe out_of_range(cfg, catalogue(), sink.sink(), quiet_log());
  EXPECT_FALSE(out_of_range.run_once());
  cfg.command = {"/bin/sh", "-c", "echo 4"};
  ScriptProbe good(cfg, catalogue(), sink.sink(), quiet_log());
  EXPECT_TRUE(good.run_once());
  EXPECT_TRUE(good.has_result());
  EXPECT_EQ(hanging.failures(), 1u);
  EXPECT_EQ(out_of_range.failures(), 1u);
  ASSERT_EQ(sink.size(), 3u);
  EXPECT_EQ(sink.events[0].indicator, "agent_script_failures");
  EXPECT_NE(sink.events[0].note.find("timed out after 1 s"), std::string::npos) << sink.events[0].note;
  EXPECT_NE(sink.events[1].note.find("value not accepted: value 9 is outside"), std::string::npos)
      << sink.events[1].note;
  EXPECT_EQ(sink.events[2].indicator, "terrorism_threat_level");
  EXPECT_EQ(sink.events[2].number, 4);
}

TEST(ScriptProbe, StopDoesNotWaitForAHangingScript) {
  RecordingSink sink;
  test::TempDir dir;
  const auto started = dir.path() / "started";
  ScriptProbeConfig cfg;
  cfg.indicator = "terrorism_threat_level";
  cfg.command = {"/bin/sh", "-c", "touch '" + started.string() + "'; exec sleep 60"};
  cfg.timeout = std::chrono::seconds(60);
  cfg.interval = std::chrono::seconds(60);
  ScriptProbe probe(cfg, catalogue(), sink.sink(), quiet_log());
  probe.start();
  // The script is running (and hanging) once it has touched its marker.
  ASSERT_TRUE(test::wait_until([&] { return std::filesystem::exists(started); }, std::chrono::seconds(10)));
  auto start = std::chrono::steady_clock::now();
  probe.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  EXPECT_EQ(probe.failures(), 0u);  // stopping is not the script's failure
}

// --- device probe readers -----------------------------------------------------------------

TEST(DeviceProbeReaders, CpuFromProcStat) {
  TempDir dir;
  write_file(dir.path() / "stat1", "cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 1 2 3 4\n");
  write_file(dir.path() / "stat2", "cpu  200 0 200 1400 0 0 0 0 0 0\n");
  auto a = read_cpu_times(dir.path() / "stat1"), b = read_cpu_times(dir.path() / "stat2");
  ASSERT_TRUE(a && b);
  EXPECT_DOUBLE_EQ(*cpu_busy_percent(*a, *b), 25.0);
  EXPECT_FALSE(cpu_busy_percent(*b, *a));
  write_file(dir.path() / "bad", "intr 1 2 3\n");
  EXPECT_FALSE(read_cpu_times(dir.path() / "bad"));
  EXPECT_TRUE(read_cpu_times());  // the real one
}

TEST(DeviceProbeReaders, MemoryUptimeDisk) {
  TempDir dir;
  write_file(dir.path() / "meminfo", "MemTotal:       1000 kB\nMemFree:  100 kB\nMemAvailable:    250 kB\n");
  EXPECT_DOUBLE_EQ(*read_memory_used_percent(dir.path() / "meminfo"), 75.0);
  write_file(dir.path() / "old_kernel", "MemTotal: 1000 kB\nMemFree: 100 kB\n");
  EXPECT_FALSE(read_memory_used_percent(dir.path() / "old_kernel"));
  write_file(dir.path() / "uptime", "12345.67 999.0\n");
  EXPECT_DOUBLE_EQ(*read_host_uptime_s(dir.path() / "uptime"), 12345.67);
  EXPECT_FALSE(read_host_uptime_s(dir.path() / "missing"));
  auto free = disk_free_percent(dir.path());
  ASSERT_TRUE(free);
  EXPECT_GE(*free, 0.0);
  EXPECT_LE(*free, 100.0);
  EXPECT_FALSE(disk_free_percent(dir.path() / "missing"));
}

TEST(DeviceProbeReaders, BrokerAddressAndUplink) {
  EXPECT_EQ(broker_host_port("tcp://127.0.0.1:1884")->port, 1884);
  EXPECT_EQ(broker_host_port("ssl://mqtt.example")->port, 8883);
  EXPECT_EQ(broker_host_port("mqtt://[::1]:99")->host, "::1");
  EXPECT_FALSE(broker_host_port("tcp://host:notaport"));
  EXPECT_FALSE(broker_host_port("nonsense"));
  MosquittoBroker broker;
  auto up = measure_uplink({"127.0.0.1", broker.port()}, std::chrono::seconds(2));
  EXPECT_TRUE(up.reachable) << up.error;
  auto down = measure_uplink({"127.0.0.1", free_port()}, std::chrono::seconds(2));
  EXPECT_FALSE(down.reachable);
  EXPECT_NE(down.error.find("cannot connect"), std::string::npos) << down.error;
}

TEST(BrokerRoute, WebSocketDefaultsProxyUrlsAndTheEnvironmentsProxy) {
  EXPECT_EQ(broker_host_port("ws://broker.example")->port, 80);
  EXPECT_EQ(broker_host_port("wss://broker.example/mqtt")->port, 443);
  auto wss = broker_host_port("wss://broker.example:9443/mqtt");
  ASSERT_TRUE(wss);
  EXPECT_EQ(wss->text(), "broker.example:9443");
  EXPECT_EQ((HostPort{"::1", 8883}).text(), "[::1]:8883");

  std::string why;
  auto proxy = parse_proxy_url("http://proxy.example:3128", why);
  ASSERT_TRUE(proxy) << why;
  EXPECT_EQ(proxy->text(), "proxy.example:3128");
  EXPECT_EQ(parse_proxy_url("http://proxy.example", why)->port, 8080);
  EXPECT_FALSE(parse_proxy_url("https://proxy.example:3128", why));
  EXPECT_NE(why.find("must be http://host:port"), std::string::npos) << why;
  EXPECT_FALSE(parse_proxy_url("http://user:secret@proxy.example:3128", why));
  EXPECT_NE(why.find("credentials"), std::string::npos) << why;
  EXPECT_EQ(why.find("secret"), std::string::npos) << "a refused proxy URL's password is not repeated";
  EXPECT_FALSE(parse_proxy_url("proxy.example:3128", why));

  // The configured proxy wins; without one, the environment's, as Paho reads it: http_proxy for
  // tcp:// and ws://, https_proxy for ssl:// and wss://.
  ::setenv("http_proxy", "http://envproxy:3128", 1);
  ::setenv("https_proxy", "tlsproxy:8443", 1);
  auto configured = effective_proxy("tcp://b:1883", "http://cfg:1");
  ASSERT_TRUE(configured);
  EXPECT_EQ(configured->at.text(), "cfg:1");
  EXPECT_EQ(configured->origin, "uplink.proxy");
  auto plain = effective_proxy("ws://b:80", "");
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->at.text(), "envproxy:3128");
  EXPECT_EQ(plain->origin, "the environment's http_proxy");
  auto tls = effective_proxy("wss://b", "");
  ASSERT_TRUE(tls);
  EXPECT_EQ(tls->at.text(), "tlsproxy:8443");
  ::unsetenv("http_proxy");
  ::unsetenv("https_proxy");
  EXPECT_FALSE(effective_proxy("tcp://b:1883", ""));
}

TEST(BrokerRoute, TheUplinkProbeThroughAProxyThatIsNotThereSaysSo) {
  const unsigned short nobody = free_port();
  auto s = measure_uplink({"127.0.0.1", 1883}, std::chrono::seconds(2), HostPort{"127.0.0.1", nobody});
  EXPECT_FALSE(s.reachable);
  EXPECT_NE(s.error.find("the proxy 127.0.0.1:" + std::to_string(nobody) + " is not reachable"), std::string::npos)
      << s.error;
}

TEST(DeviceProbes, EveryReadingIsAValidHealthEvent) {
  TempDir dir;
  RecordingSink sink;
  ProbesConfig cfg;
  cfg.uplink_timeout = std::chrono::milliseconds(500);
  DeviceProbes probes(cfg, "tcp://127.0.0.1:" + std::to_string(free_port()), dir.path(), sink.sink(), quiet_log());
  probes.start();  // takes the first CPU sample
  probes.stop();
  probes.collect_once();
  std::set<std::string> seen;
  for (const auto& e : sink.events) seen.insert(e.indicator);
  for (const char* id :
       {"agent_memory_percent", "agent_disk_free_percent", "agent_host_uptime_s", "agent_uplink_reachable"})
    EXPECT_TRUE(seen.count(id)) << id;
  EXPECT_FALSE(seen.count("agent_uplink_latency_ms"));  // unreachable: no latency
  for (const auto& e : sink.events) {
    if (e.indicator == "agent_uplink_reachable") {
      EXPECT_EQ(e.number, 0);
    }
  }
}

// --- config -------------------------------------------------------------------------------

TEST(InputsConfig, SectionsAreReadAndCheckedPerField) {
  TempDir dir;
  auto file = dir.path() / "agent.json";
  write_file(file, json{{"agent_id", "a1"},
                        {"post_id", "bamako"},
                        {"allow_plaintext", true},
                        {"local_api", {{"socket", "run/agent.sock"}, {"mode", "0600"}}},
                        {"drop_dir", {{"path", "drop"}, {"poll_s", 2}}},
                        {"probes", {{"interval_s", 30}, {"clock", false}}},
                        {"scripts", json::array({{{"indicator", "terrorism_threat_level"},
                                                  {"command", {"/bin/echo", "3"}},
                                                  {"interval_s", 60},
                                                  {"timeout_s", 5}}})}}
                       .dump());
  std::vector<ConfigProblem> problems;
  auto c = AgentConfig::parse(file, problems);
  ASSERT_TRUE(problems.empty()) << problems[0].field << ": " << problems[0].message;
  EXPECT_TRUE(c.local_api.enabled);
  EXPECT_EQ(c.local_api.socket, dir.path() / "run/agent.sock");
  EXPECT_EQ(c.local_api.mode, 0600u);
  EXPECT_EQ(c.drop_dir.dir, dir.path() / "drop");
  EXPECT_EQ(c.drop_dir.poll_interval, std::chrono::seconds(2));
  EXPECT_TRUE(c.probes.enabled);
  EXPECT_FALSE(c.probes.clock);
  ASSERT_EQ(c.scripts.size(), 1u);
  EXPECT_EQ(c.scripts[0].command, (std::vector<std::string>{"/bin/echo", "3"}));

  write_file(file, json{{"agent_id", "a1"},
                        {"post_id", "bamako"},
                        {"allow_plaintext", true},
                        {"local_api", {{"mode", "rw"}}},
                        {"drop_dir", {{"poll_s", 0}}},
                        {"probes", {{"cpu", "yes"}, {"gpu", true}}},
                        {"scripts", json::array({{{"indicator", "no_such"}, {"command", "echo 3"}},
                                                 {{"indicator", "cyber_incidents"},
                                                  {"command", {"/nonexistent/x"}},
                                                  {"interval_s", 5},
                                                  {"timeout_s", 10}}})}}
                       .dump());
  auto check = AgentConfig::validate(file, catalogue_path());
  auto all = check.describe_all();
  for (const char* expected :
       {"local_api.mode: must be an octal file mode", "drop_dir.path: missing (required)",
        "drop_dir.poll_s: must be between 1 and 3600", "probes.cpu: must be true or false",
        "probes.gpu: unknown setting", "scripts[0].command: must be a non-empty array of strings",
        "scripts[0].indicator: 'no_such' is not an indicator in the catalogue",
        "scripts[1].timeout_s: must not exceed interval_s (5)",
        "scripts[1].command: /nonexistent/x is not an executable"})
    EXPECT_NE(all.find(expected), std::string::npos) << expected << "\n" << all;
}

// Fallback brokers (docs/agent.md, "Configuration"): read in order after broker_uri; refused
// when they are not broker URIs, disagree with broker_uri about TLS, or repeat one.
TEST(BrokerFallbacks, AreReadInOrderAndCheckedPerEntry) {
  TempDir dir;
  auto file = dir.path() / "agent.json";
  json base{{"agent_id", "a1"}, {"post_id", "bamako"}, {"allow_plaintext", true}, {"broker_uri", "tcp://nats-1:1883"}};
  json good = base;
  good["broker_fallbacks"] = {"tcp://nats-2:1883", "mqtt://nats-3:1883"};
  write_file(file, good.dump());
  std::vector<ConfigProblem> problems;
  auto c = AgentConfig::parse(file, problems);
  ASSERT_TRUE(problems.empty()) << problems[0].field << ": " << problems[0].message;
  EXPECT_EQ(c.brokers(), (std::vector<std::string>{"tcp://nats-1:1883", "tcp://nats-2:1883", "mqtt://nats-3:1883"}));

  json bad = base;
  bad["broker_fallbacks"] = {"nats-2:1883", "ssl://nats-3:8883", "tcp://nats-1:1883", 7};
  write_file(file, bad.dump());
  auto all = AgentConfig::validate(file, catalogue_path()).describe_all();
  for (const char* expected :
       {"broker_fallbacks[0]: must start with tcp://, ssl://, mqtt://, mqtts://, ws:// or wss://",
        "broker_fallbacks[1]: ssl://nats-3:8883 uses TLS but broker_uri is plaintext: one tls section serves every "
        "broker, so they must agree",
        "broker_fallbacks[2]: tcp://nats-1:1883 is listed twice", "broker_fallbacks[3]: must be a string"})
    EXPECT_NE(all.find(expected), std::string::npos) << expected << "\n" << all;
  bad["broker_fallbacks"] = "tcp://nats-2:1883";
  write_file(file, bad.dump());
  all = AgentConfig::validate(file, catalogue_path()).describe_all();
  EXPECT_NE(all.find("broker_fallbacks: must be an array of broker URIs"), std::string::npos) << all;
}
