// postwatch-bench-rollout: a new indicator rolled out to N real agent processes (docs/fleet.md,
// "A new indicator"). One Mosquitto, one postwatch-aggregator with --fleet-keys, N postwatch-agent
// processes taking bundles. Signs a catalogue with one more indicator, starts a rollout (10 %
// canary, waves of 30 %, no interval), and prints: how long the aggregator took to adopt the
// catalogue and come back, how long the canary and the whole rollout took, how many agents
// applied, failed or never answered, and whether each agent then reports the new indicator and
// the aggregator applies it. Never asserts timing; the figures go in docs/performance.md.
//
//   postwatch-bench-rollout [--agents N]   (default 200; each agent holds about 10 MB)
#include "postwatch/catalogue.hpp"
#include "postwatch/fleet_bundle.hpp"
#include "support/agent_config_file.hpp"
#include "support/aggregator_process.hpp"
#include "support/catalogue_edit.hpp"
#include "support/feed_http.hpp"
#include "support/test_support.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>

using namespace postwatch;
using namespace postwatch::test;
namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct Bench {
  TempDir dir;
  MosquittoBroker broker;
  TokensFile tokens{dir};
  SigningKey key = SigningKey::from_seed({77});
  fs::path pub = dir.path() / "fleet.pub";
  std::unique_ptr<AggregatorProcess> aggregator;
  std::vector<std::unique_ptr<ChildProcess>> agents;
  std::vector<std::string> posts;

  explicit Bench(int n) {
    std::ofstream(pub) << to_hex(key.public_key()) << "\n";
    aggregator = std::make_unique<AggregatorProcess>(
        broker, dir, std::vector<std::string>{"--fleet-keys", pub.string(), "--tokens-file", tokens.path.string()});
    auto cat = IndicatorCatalogue::load(catalogue_path());
    for (const auto i : cat.posts_of_kind(PostKind::Post)) posts.push_back(cat.posts()[i].id);
    for (int i = 0; i < n; ++i) {
      const auto home = dir.path() / ("a" + std::to_string(i));
      fs::create_directories(home);
      AgentConfigFile(broker.uri(), "r" + std::to_string(i), posts[static_cast<std::size_t>(i) % posts.size()],
                      home / "spool")
          .set("heartbeat_interval_s", 5)
          .set("fleet", {{"key_file", pub.string()}})
          .write(home / "agent.json");
      agents.push_back(
          std::make_unique<ChildProcess>(std::vector<std::string>{(binary_dir() / "agent" / "postwatch-agent").string(),
                                                                  "run", "--config", (home / "agent.json").string()},
                                         home / "agent.log", /*pipe_stdin=*/true));
    }
  }
  json get(const std::string& target) {
    auto r = http_call(aggregator->port(), feedhttp::verb::get, target, bearer(TokensFile::kRead));
    return r.status == 200 ? json::parse(r.body, nullptr, false) : json();
  }
  std::size_t online_with_fleet() {
    std::size_t n = 0;
    auto a = get("/api/v1/agents");
    if (a.is_object())
      for (const auto& x : a["agents"]) n += x.value("online", false) && x.contains("fleet");
    return n;
  }
};

}  // namespace

int main(int argc, char** argv) {
  int n = 200;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--agents") == 0 && i + 1 < argc) {
      n = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: postwatch-bench-rollout [--agents N]\n");
      return 2;
    }
  }
  if (n < 1) {
    std::fprintf(stderr, "postwatch-bench-rollout: --agents must be 1 or more\n");
    return 2;
  }
  Bench b(n);
  const auto t_start = Clock::now();
  if (!wait_until([&] { return b.online_with_fleet() == static_cast<std::size_t>(n); }, std::chrono::seconds(180))) {
    std::fprintf(stderr, "only %zu of %d agents came online\n", b.online_with_fleet(), n);
    return 1;
  }
  std::printf("agents online and reporting: %d, %.1f s after the last one started\n", n, seconds_since(t_start));

  const std::uint32_t v1 = installed_catalogue_json().value("catalogue_version", 0u);
  const auto cat = catalogue_with_indicator("border_crossings_closed", "Border crossings closed", v1 + 1);
  FleetBundle bundle;
  bundle.version = 1;
  bundle.catalogue = cat.dump();
  bundle.health_deadline_s = 10;
  json body{{"bundle", json::parse(sign_bundle(bundle, b.key))},
            {"canary_percent", 10},
            {"wave_percent", 30},
            {"wave_interval_s", 0},
            {"max_failed_percent", 20}};
  auto h = bearer(TokensFile::kOperator);
  h["Content-Type"] = "application/json";
  const auto t_create = Clock::now();
  auto created = http_call(b.aggregator->port(), feedhttp::verb::post, "/api/v1/rollouts", h, body.dump());
  if (created.status != 201) {
    std::fprintf(stderr, "rollout refused: HTTP %d %s\n", created.status, created.body.c_str());
    return 1;
  }
  wait_until([&] { return b.get("/api/v1/rollouts")["catalogue_version"] == v1 + 1; }, std::chrono::seconds(60));
  std::printf("aggregator adopted catalogue_version %u and answers again: %.2f s after the request\n", v1 + 1,
              seconds_since(t_create));
  double canary_s = 0;
  json r;
  const bool done = wait_until(
      [&] {
        r = b.get("/api/v1/rollouts/1");
        if (!r.is_object()) return false;
        if (canary_s == 0 && r.value("wave", 0) >= 1) canary_s = seconds_since(t_create);
        return r["phase"] == "complete" || r["phase"] == "aborted";
      },
      std::chrono::seconds(600));
  const double total_s = seconds_since(t_create);
  std::printf("rollout %s: %.1f s (canary settled after %.1f s), %d waves; applied %d, failed %d, waiting %d\n",
              done ? r["phase"].get<std::string>().c_str() : "unfinished", total_s, canary_s, r.value("waves", 0),
              r["counts"].value("applied", 0), r["counts"].value("failed", 0), r["counts"].value("waiting", 0));

  // Every agent reads the new indicator once, and the aggregator applies each reading.
  const auto before = b.get("/api/v1/stats").value("events_accepted", std::uint64_t{0});
  for (auto& a : b.agents)
    a->write_stdin(R"({"indicator": "border_crossings_closed", "value": 2})"
                   "\n");
  const auto t_events = Clock::now();
  const bool all =
      wait_until([&] { return b.get("/api/v1/stats").value("events_accepted", std::uint64_t{0}) >= before + n; },
                 std::chrono::seconds(60));
  auto stats = b.get("/api/v1/stats");
  std::printf("new indicator: %llu of %d readings applied in %.1f s, %llu refused as unknown\n",
              static_cast<unsigned long long>(stats.value("events_accepted", std::uint64_t{0}) - before), n,
              seconds_since(t_events), static_cast<unsigned long long>(stats.value("events_unknown_indicator", 0ull)));
  return done && all && r["phase"] == "complete" ? 0 : 1;
}
