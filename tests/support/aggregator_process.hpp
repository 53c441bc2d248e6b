// The real postwatch-aggregator binary as a child process, with JSON helpers.
#pragma once

#include "support/test_support.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

namespace postwatch::test {

// How long a start may take before it counts as failed. The first instance of a fresh NATS
// cluster makes the events stream, the buckets and 16 replicated consumers (130-670 ms each):
// under ASan on a loaded machine that took longer than 15 s (a clean-clone run failed
// JetStreamCluster.EveryInstanceServesOneBoard... on "did not become ready" at 15 s).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr std::chrono::seconds kReadyWithin{60};
#else
inline constexpr std::chrono::seconds kReadyWithin{30};
#endif

class AggregatorProcess {
 public:
  // Data lives in <dir>/aggregator-data, so a second process on the same dir resumes the first's store.
  AggregatorProcess(const MosquittoBroker& broker, const TempDir& dir, std::vector<std::string> extra_args = {},
                    const std::string& client_id = "")
      : AggregatorProcess(broker.uri(), dir, std::move(extra_args), client_id) {}
  // Against any MQTT broker (a NATS cluster's MQTT listener, say).
  // `ready_within`: a cluster instance joining under load takes its partitions over first.
  AggregatorProcess(const std::string& broker_uri, const TempDir& dir, std::vector<std::string> extra_args = {},
                    const std::string& client_id = "", std::chrono::seconds ready_within = kReadyWithin)
      : http_port_(free_port()),
        proc_(make_args(http_port_, broker_uri, dir, extra_args, client_id), dir.path() / "aggregator.log") {
    bool ready =
        wait_until([&] { return http_get(http_port_, "/readyz").status == 200 || !proc_.running(); }, ready_within);
    if (!ready || !proc_.running()) throw std::runtime_error("aggregator did not become ready:\n" + proc_.log());
  }
  // An aggregator that must never become ready (a refused login, say): runs it until its log
  // holds `expected`, it exits or `within` passes, then stops it; returns its log.
  static std::string log_until(const std::string& broker_uri, const TempDir& dir, std::vector<std::string> extra_args,
                               const std::string& expected, std::chrono::seconds within = kReadyWithin) {
    ChildProcess proc(make_args(free_port(), broker_uri, dir, extra_args, ""), dir.path() / "aggregator.log");
    wait_until([&] { return proc.log().find(expected) != std::string::npos || !proc.running(); }, within);
    return proc.log();
  }
  unsigned short port() const { return http_port_; }
  ChildProcess& process() { return proc_; }
  nlohmann::json get(const std::string& target) {
    auto r = http_get(http_port_, target);
    if (r.status != 200) return nlohmann::json();
    return nlohmann::json::parse(r.body, nullptr, false);
  }
  std::string goal_status(int goal) {
    auto j = get("/api/v1/goals/" + std::to_string(goal));
    return j.is_object() ? j["status"].get<std::string>() : "";
  }
  // The aggregator's event counters for one agent ("post/agent"): events (received),
  // highest_seq, gaps, reordered, ...; null before its first event.
  nlohmann::json agent_track(const std::string& key) {
    auto a = get("/api/v1/agents/" + key);
    if (!a.is_object() || !a["events"].is_object()) return nullptr;
    auto t = a["events"];
    t["events"] = t["received"];
    return t;
  }
  std::uint64_t events_accepted() {
    auto stats = get("/api/v1/stats");
    return stats.is_object() ? stats["events_accepted"].get<std::uint64_t>() : 0;
  }

 private:
  static std::vector<std::string> make_args(unsigned short http_port, const std::string& broker_uri, const TempDir& dir,
                                            const std::vector<std::string>& extra, const std::string& client_id) {
    std::vector<std::string> a = {(binary_dir() / "aggregator" / "postwatch-aggregator").string(),
                                  "--broker",
                                  broker_uri,
                                  "--http-port",
                                  std::to_string(http_port),
                                  "--client-id",
                                  client_id.empty() ? "agg-" + std::to_string(http_port) : client_id,
                                  "--data-dir",
                                  (dir.path() / "aggregator-data").string()};
    // The source tree's catalogue and fast, undebounced defaults for tests, unless the test sets its own.
    const std::string catalogue = catalogue_path().string();
    for (const auto& [flag, value] : {std::pair<const char*, const char*>{"--catalogue", catalogue.c_str()},
                                      {"--min-duration-s", "0"},
                                      {"--tick-ms", "50"}})
      if (std::find(extra.begin(), extra.end(), flag) == extra.end()) a.insert(a.end(), {flag, value});
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  unsigned short http_port_;
  ChildProcess proc_;
};

}  // namespace postwatch::test
