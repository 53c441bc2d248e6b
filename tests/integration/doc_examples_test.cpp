// The README's and docs/' examples are run, not trusted (tracker issue 23): every fenced block
// says what it is in a marker, and tests/tools/doc_examples.py runs what can run (commands
// against a real Mosquitto and aggregator started here, configs through --check-config,
// scenarios through the simulator, JSON answers against the served OpenAPI description, options
// against each program's --help, generated files against the generator's output).
#include "support/aggregator_process.hpp"
#include "support/feed_http.hpp"
#include "support/mqtt_probe.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

using namespace postwatch;
using namespace postwatch::test;

namespace {

const std::filesystem::path kSourceDir = postwatch::test::source_dir();

// Every Markdown file whose examples a reader would run: the README, docs/, firmware-config/.
std::vector<std::filesystem::path> documentation() {
  std::vector<std::filesystem::path> files = {kSourceDir / "README.md", kSourceDir / "firmware-config" / "README.md"};
  for (const auto& e : std::filesystem::directory_iterator(kSourceDir / "docs"))
    if (e.path().extension() == ".md") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  return files;
}

std::string checker_command(const std::string& api, const std::string& broker,
                            const std::vector<std::filesystem::path>& files) {
  // Debian's interpreter, whose jsonschema module tools/bootstrap installs.
  const std::string python = ::access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
  std::string cmd = python + " " + shell_quoted((kSourceDir / "tests" / "tools" / "doc_examples.py").string()) +
                    " --src " + shell_quoted(kSourceDir.string()) + " --bin " + shell_quoted(binary_dir().string()) +
                    " --api " + shell_quoted(api) + " --broker " + shell_quoted(broker);
  for (const auto& f : files) cmd += " " + shell_quoted(f.string());
  return cmd;
}

// "N blocks: R run, S not run, F failed" from the checker's last line.
struct Summary {
  int blocks = -1, run = -1, not_run = -1, failed = -1;
};
Summary summary_of(const std::string& output) {
  Summary s;
  std::smatch m;
  if (std::regex_search(output, m, std::regex(R"((\d+) blocks: (\d+) run, (\d+) not run, (\d+) failed)")))
    s = {std::stoi(m[1]), std::stoi(m[2]), std::stoi(m[3]), std::stoi(m[4])};
  return s;
}

class DocExamples : public ::testing::Test {
 protected:
  void SetUp() override {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    GTEST_SKIP() << "the docs' examples run once, in the release build: the same text and programs";
#endif
    // A reading at bamako, so the board has a red goal 7 and the MQTT feed retained snapshots
    // (operations.md subscribes to it).
    MqttProbe pub(broker.uri(), "doc-examples-publisher");
    pub.publish_event("sub-saharan-africa", "bamako", "terrorism_threat_level", 5);
    ASSERT_TRUE(wait_until([&] { return agg.goal_status(7) == "red"; }, std::chrono::seconds(10)));
  }
  std::string api() const { return "http://127.0.0.1:" + std::to_string(agg.port()); }

  MosquittoBroker broker;
  TempDir dir;
  AggregatorProcess agg{broker, dir};
};

}  // namespace

TEST_F(DocExamples, EveryBlockIsMarkedAndEveryRunnableOneRunsAsWritten) {
  const auto r = run_shell(checker_command(api(), broker.uri(), documentation()));
  const Summary s = summary_of(r.output);
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(s.failed, 0) << r.output;
  // Most of the docs' blocks are checked, not waved through: today 36 of 57.
  EXPECT_GT(s.blocks, 50) << r.output;
  EXPECT_GT(s.run, s.not_run) << r.output;
  EXPECT_NE(r.output.find("docs/deploy.md"), std::string::npos) << r.output;
}

// The checker itself fails on each kind of drift it is there to catch.
TEST_F(DocExamples, TheCheckerFailsOnEachKindOfDrift) {
  const char* drift = R"(# Drift

```
a block nobody marked
```

<!-- doc-example: not-run -->
```
not-run without a reason
```

<!-- doc-example: run -->
```sh
postwatch-agent --version && false
```

<!-- doc-example: options -->
```
postwatch-aggregator --broker tcp://127.0.0.1:1883 --no-such-option 1
```

<!-- doc-example: agent-config -->
```json
{"broker_uri": "tcp://10.0.0.1:1883", "agent_id": "gw 1", "post_id": "nowhere"}
```

<!-- doc-example: scenario -->
```json
{"name": "x", "description": "d", "posts": ["bamako"], "steps": [{"at_s": 1, "action": "silence", "posts": ["kabul"], "duration_s": 5}]}
```

<!-- doc-example: response /api/v1/alarms -->
```json
{"alarms": [{"id": 1, "kind": "goal", "goal": 7, "level": "red", "state": "open", "colour": "red"}]}
```

<!-- doc-example: run -->
```
printf 'listener 8883\n' > generated.conf
```

<!-- doc-example: generated generated.conf -->
```
listener 8883
require_certificate true
```

<!-- doc-example: run output-in-doc -->
```
echo "a line this file does not hold"
```
)";
  auto path = dir.path() / "drift.md";
  std::ofstream(path) << drift;
  const auto r = run_shell(checker_command(api(), broker.uri(), {path}));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_EQ(summary_of(r.output).failed, 9) << r.output;
  for (const char* expected :
       {"drift.md:3: FAILED: no <!-- doc-example", "drift.md:8: FAILED: not-run needs a reason", "run: FAILED: exit 1",
        "--no-such-option is not in its --help", "agent-config: FAILED: postwatch-agent --check-config refused it",
        "post 'kabul' is not among the scenario's posts", "$.alarms[0].colour: not in the spec",
        "1 line(s) not in the generated generated.conf", "output line(s) not in"})
    EXPECT_NE(r.output.find(expected), std::string::npos) << expected << "\n" << r.output;
}
