// The Trust fixture (docs/security.md): a real Mosquitto, the real aggregator with an operator
// token, and one agent's config with identity files, plus the calls the trust tests make
// (issue a token, enrol, rotate-key, the API, the agent's status file). Shared by
// agent_trust_test.cpp and aggregator_key_test.cpp.
#pragma once

#include "postwatch/catalogue.hpp"
#include "postwatch/clock.hpp"
#include "postwatch/enrolment.hpp"
#include "postwatch/topics.hpp"
#include "support/aggregator_process.hpp"
#include "support/feed_http.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>

namespace postwatch::test {

namespace fs = std::filesystem;
using nlohmann::json;

inline constexpr const char* kPost = "bamako";
inline constexpr const char* kAgent = "gw-1";

inline std::string topic_of(topics::Channel channel, const std::string& agent = kAgent) {
  static const auto catalogue = IndicatorCatalogue::load(catalogue_path());
  return topics::agent_topic(catalogue.find_post(kPost)->region, kPost, agent, channel);
}

inline std::string event_lines(int from, int count, int value = 2) {
  std::string out;
  for (int i = from; i < from + count; ++i)
    out += json{{"indicator", "terrorism_threat_level"}, {"value", value}, {"observed_at_ms", now_utc_ms() - 1000 + i}}
               .dump() +
           "\n";
  return out;
}

class Trust : public ::testing::Test {
 protected:
  TempDir dir;
  MosquittoBroker broker;
  TokensFile tokens{dir};
  std::optional<AggregatorProcess> aggregator;
  fs::path config_file = dir.path() / "agent.json";
  fs::path key_file = dir.path() / "agent.key";
  fs::path aggregator_key_file = dir.path() / "aggregator.pub";
  fs::path status_path = dir.path() / "spool" / "status.json";
  int runs = 0;

  void SetUp() override {
    aggregator.emplace(broker, dir, std::vector<std::string>{"--tokens-file", tokens.path.string()});
    write_config(kAgent, config_file, key_file, aggregator_key_file, dir.path() / "spool");
  }

  void write_config(const std::string& agent, const fs::path& file, const fs::path& key, const fs::path& aggr,
                    const fs::path& spool) {
    std::ofstream(file) << json{{"broker_uri", broker.uri()},
                                {"allow_plaintext", true},
                                {"agent_id", agent},
                                {"post_id", kPost},
                                {"catalogue_file", catalogue_path().string()},
                                {"keep_alive_s", 5},
                                {"heartbeat_interval_s", 1},
                                {"batch", {{"max_delay_ms", 10}}},
                                {"identity", {{"key_file", key.string()}, {"aggregator_key_file", aggr.string()}}},
                                {"spool", {{"dir", spool.string()}, {"fsync", "never"}}}}
                               .dump(2);
  }

  HttpReply issue(const std::string& agent = kAgent, const std::string& token = TokensFile::kOperator) {
    auto h = bearer(token);
    h["Content-Type"] = "application/json";
    return http_call(aggregator->port(), feedhttp::verb::post, "/api/v1/enrolment-tokens", h,
                     json{{"post", kPost}, {"agent", agent}, {"valid_minutes", 10}}.dump());
  }
  std::string token_for(const std::string& agent = kAgent) {
    auto r = issue(agent);
    EXPECT_EQ(r.status, 201) << r.body;
    return r.json().value("token", "");
  }
  CommandResult rotate_key(int timeout_s = 15) {
    return run_shell(shell_quoted((binary_dir() / "agent" / "postwatch-agent").string()) + " rotate-key --config " +
                     shell_quoted(config_file.string()) + " --timeout-s " + std::to_string(timeout_s) + " 2>&1");
  }
  CommandResult enrol(const std::string& token, const fs::path& config = {}, int timeout_s = 15) {
    return run_shell(shell_quoted((binary_dir() / "agent" / "postwatch-agent").string()) + " enrol --config " +
                     shell_quoted((config.empty() ? config_file : config).string()) + " --token " +
                     shell_quoted(token) + " --timeout-s " + std::to_string(timeout_s) + " 2>&1");
  }
  json api(const std::string& target) {
    auto r = http_call(aggregator->port(), feedhttp::verb::get, target, bearer(TokensFile::kRead));
    return r.json();
  }
  json stats() { return api("/api/v1/stats"); }

  // `postwatch-agent run` over `count` events on stdin, until the spool is empty.
  int run_agent(int from, int count, std::chrono::seconds within = std::chrono::seconds(30)) {
    ChildProcess agent({(binary_dir() / "agent" / "postwatch-agent").string(), "run", "--config", config_file.string(),
                        "--exit-on-eof"},
                       dir.path() / ("agent-" + std::to_string(++runs) + ".log"), true);
    EXPECT_TRUE(agent.write_stdin(event_lines(from, count)));
    agent.close_stdin();
    int rc = agent.wait(within);
    if (rc != 0) ADD_FAILURE() << "agent exit " << rc << "\n" << agent.log();
    return rc;
  }
  json status() {
    std::ifstream in(status_path);
    return in ? json::parse(in, nullptr, false) : json();
  }
  // The agent's events confirmed by the aggregator, from its status file (0 before it exists).
  int confirmed() {
    auto s = status();
    return s.is_object() ? s.value("events_confirmed", 0) : 0;
  }
};

// About 1 000 events a second on a running agent's stdin (20 every 20 ms) until the test
// stops it or `max_chunks` chunks ran out, so a rotation happens under load however slow the
// build (TSan) is. Joined on every way out, a failed assertion too.
class SteadyWriter {
 public:
  static constexpr int kChunk = 20;
  SteadyWriter(ChildProcess& agent, int max_chunks)
      : max_chunks_(max_chunks), thread_([this, &agent] {
          for (int c = 0; c < max_chunks_ && !stop_; ++c) {
            if (!agent.write_stdin(event_lines(c * kChunk, kChunk))) break;
            written_ += kChunk;
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
          }
        }) {}
  ~SteadyWriter() { stop_ = true; }  // then thread_ joins, promptly
  SteadyWriter(const SteadyWriter&) = delete;
  SteadyWriter& operator=(const SteadyWriter&) = delete;
  int written() const { return written_.load(); }
  // Waits for `more` events past what was written when called, then stops; the total.
  int write_more_then_stop(int more) {
    const int from = written_.load();
    wait_until([&] { return written_.load() >= from + more; }, std::chrono::seconds(30));
    stop_ = true;
    thread_.join();
    return written_.load();
  }
  bool ran_out() const { return written_.load() >= kChunk * max_chunks_; }

 private:
  const int max_chunks_;
  std::atomic<int> written_{0};
  std::atomic<bool> stop_{false};
  std::jthread thread_;  // last: it starts once the counters exist
};

}  // namespace postwatch::test
