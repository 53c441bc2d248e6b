// Enrolled agents in a cluster on NATS JetStream (docs/security.md, "Clusters"): instances
// provisioned with the same aggregator key and enrolment secret share one agent key registry
// through the bucket postwatch-<group>-trust, every entry sealed with that key. One cluster
// start for every check: an agent enrolled through the cluster is trusted by every instance,
// also by the one that takes its post over after a SIGKILL; a rotation and a revocation reach
// every instance; a token works once cluster-wide;
// entries written straight into the bucket without the key change nothing; an instance
// provisioned with another key says so, and the others name it.
#include "integration/jetstream_fleet_support.hpp"
#include "integration/jetstream_test_support.hpp"
#include "integration/trust_test_support.hpp"
#include "postwatch/event_partitions.hpp"
#include "support/agent_config_file.hpp"
#include "support/aggregator_process.hpp"
#include "support/feed_http.hpp"
#include "support/nats_cluster.hpp"
#include "trust/shared_record.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <fstream>
#include <iostream>

using namespace postwatch::test;
using namespace std::chrono_literals;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const fs::path kAgentBinary = binary_dir() / "agent" / "postwatch-agent";

// The operator's provisioning (docs/security.md, "Key custody"): one instance's keys copied
// into another's --keys-dir, readable by its user only.
void provision_keys(const TempDir& from, const TempDir& to) {
  const auto src = from.path() / "aggregator-data" / "keys", dst = to.path() / "aggregator-data" / "keys";
  fs::create_directories(dst);
  fs::permissions(dst, fs::perms::owner_all);
  for (const char* f : {"aggregator.key", "enrolment.secret"}) {
    fs::copy_file(src / f, dst / f, fs::copy_options::overwrite_existing);
    fs::permissions(dst / f, fs::perms::owner_read | fs::perms::owner_write);
  }
}

json agent_key_of(AggregatorProcess& agg, const std::string& agent) {
  auto keys = agg.get("/api/v1/agent-keys");
  if (keys.is_object())
    for (const auto& k : keys["keys"])
      if (k["post"] == kPost && k["agent"] == agent && k["state"] == "in_force") return k;
  return nullptr;
}

// A counter of /api/v1/stats; one counted by reason, summed.
std::uint64_t stat(AggregatorProcess& agg, const std::string& name) {
  auto s = agg.get("/api/v1/stats");
  if (!s.is_object() || !s.contains(name)) return 0;
  if (s[name].is_number()) return s[name].get<std::uint64_t>();
  std::uint64_t sum = 0;
  for (const auto& [reason, n] : s[name].items()) sum += n.get<std::uint64_t>();
  return sum;
}

std::uint64_t refused_entries(AggregatorProcess& agg) {
  auto c = agg.get("/api/v1/cluster");
  return c.is_object() ? c["trust"].value("entries_refused", std::uint64_t{0}) : 0;
}

class ClusterTrust : public ::testing::Test {
 protected:
  void TearDown() override {
    if (!HasFailure()) return;
    for (auto* a : {a_.get(), b_.get()})
      if (a) {
        auto log = a->process().log();
        std::cerr << "--- instance on port " << a->port() << ":\n"
                  << warnings(log) << "... last lines:\n"
                  << log.substr(log.size() > 8000 ? log.size() - 8000 : 0);
      }
  }
  std::unique_ptr<AggregatorProcess> start(const TempDir& dir, const std::string& name, int node,
                                           std::chrono::seconds within = kReadyWithin) {
    // Keys of its own, provisioned by hand below as the docs say (not the fixture's shared ones).
    return std::make_unique<AggregatorProcess>(nats.mqtt_uri(node), dir, cluster_args(nats, name, false), name, within);
  }
  fs::path agent_config(const std::string& name) {
    auto file = agent_dir.path() / (name + ".json");
    AgentConfigFile(nats.mqtt_uri(0), kAgent, kPost, agent_dir.path() / (name + "-spool"))
        .set("keep_alive_s", 5)
        .set("heartbeat_interval_s", 1)
        .set("batch", {{"max_delay_ms", 10}})
        .set("identity", {{"key_file", (agent_dir.path() / (name + ".key")).string()},
                          {"aggregator_key_file", (agent_dir.path() / (name + ".pub")).string()}})
        .write(file);
    return file;
  }
  std::string issue_token(AggregatorProcess& agg) {
    auto r =
        http_call(agg.port(), feedhttp::verb::post, "/api/v1/enrolment-tokens", {{"Content-Type", "application/json"}},
                  json{{"post", kPost}, {"agent", kAgent}, {"valid_minutes", 10}}.dump());
    EXPECT_EQ(r.status, 201) << r.body;
    return r.json().value("token", "");
  }
  CommandResult enrol(const fs::path& config, const std::string& token) {
    return run_shell(shell_quoted(kAgentBinary.string()) + " enrol --config " + shell_quoted(config.string()) +
                     " --token " + shell_quoted(token) + " --timeout-s 20 2>&1");
  }
  // `postwatch-agent run` over `count` events until its spool is empty: every event confirmed
  // by a confirmation signed with the key the agent trusts.
  ::testing::AssertionResult run_agent(const fs::path& config, int from, int count) {
    ChildProcess agent({kAgentBinary.string(), "run", "--config", config.string(), "--exit-on-eof"},
                       agent_dir.path() / ("agent-" + std::to_string(from) + ".log"), true);
    agent.write_stdin(event_lines(from, count));
    agent.close_stdin();
    if (int rc = agent.wait(60s); rc != 0)
      return ::testing::AssertionFailure() << "agent exit " << rc << "\n" << agent.log();
    return ::testing::AssertionSuccess();
  }

  NatsCluster nats{3};
  TempDir dir_a, dir_b, dir_c, agent_dir;
  std::unique_ptr<AggregatorProcess> a_, b_;
};

}  // namespace

TEST_F(ClusterTrust, AnAgentEnrolledThroughTheClusterIsTrustedByEveryInstanceAndItsHolderCanDie) {
  // A makes the keys on its first start; the operator gives B the same ones.
  a_ = start(dir_a, "agg-a", 0, 60s);
  provision_keys(dir_a, dir_b);
  b_ = start(dir_b, "agg-b", 1);
  ASSERT_TRUE(settles({a_.get(), b_.get()}, nats.partitions(), 30s));
  const std::string cluster_key = a_->get("/api/v1/cluster")["trust"]["aggregator_key_id"];
  ASSERT_TRUE(wait_until(
      [&] {
        auto c = b_->get("/api/v1/cluster");
        return c["trust"]["aggregator_key_id"] == cluster_key && c["trust"]["instances"]["agg-a"]["agrees"] == true;
      },
      20s))
      << b_->get("/api/v1/cluster").dump();

  // Enrolled with a token A issued, whichever instance holds bamako's partition: every instance
  // knows the key, and the agent's signed batches are accepted and confirmed.
  const auto token = issue_token(*a_);
  const auto gw = agent_config("gw");
  auto enrolled = enrol(gw, token);
  ASSERT_EQ(enrolled.status, 0) << enrolled.output;
  for (auto* agg : {a_.get(), b_.get()})
    EXPECT_TRUE(wait_until([&] { return !agent_key_of(*agg, kAgent).is_null(); }, 10s))
        << agg->get("/api/v1/agent-keys").dump();
  ASSERT_TRUE(run_agent(gw, 0, 50));
  // Every instance hears the agent's signed heartbeats: none refuses them or a batch.
  for (auto* agg : {a_.get(), b_.get()}) {
    EXPECT_EQ(stat(*agg, "batches_refused_signature"), 0u) << agg->get("/api/v1/stats").dump();
    EXPECT_EQ(stat(*agg, "agent_states_refused_signature"), 0u) << agg->get("/api/v1/stats").dump();
  }

  // The holder of bamako's partition dies; the other takes it over, accepts the agent's signed
  // batches and signs the confirmations the agent trusts.
  const unsigned bamako = postwatch::partitions::partition_of(kPost, nats.partitions());
  auto holds_bamako = [&](AggregatorProcess& agg) {
    auto c = agg.get("/api/v1/cluster");
    if (c.is_object())
      for (const auto& p : c["partitions"]["held"])
        if (p == bamako) return true;
    return false;
  };
  ASSERT_TRUE(wait_until([&] { return holds_bamako(*a_) || holds_bamako(*b_); }, 10s));
  auto& dead = holds_bamako(*a_) ? a_ : b_;
  auto& survivor = holds_bamako(*a_) ? b_ : a_;
  const TempDir& dead_dir = dead == a_ ? dir_a : dir_b;
  const std::string dead_name = dead == a_ ? "agg-a" : "agg-b";
  dead->process().signal(SIGKILL);
  dead->process().wait(5s);
  ASSERT_TRUE(settles({survivor.get()}, nats.partitions(), 30s));
  const auto signed_before = stat(*survivor, "batches_signed");
  ASSERT_TRUE(run_agent(gw, 50, 50));
  EXPECT_GT(stat(*survivor, "batches_signed"), signed_before);
  EXPECT_EQ(stat(*survivor, "batches_refused_signature"), 0u) << survivor->get("/api/v1/stats").dump();

  // The token again, with another key, decided by the survivor: used already, cluster-wide.
  auto reused = enrol(agent_config("thief"), token);
  EXPECT_EQ(reused.status, 1) << reused.output;
  EXPECT_NE(reused.output.find("used already"), std::string::npos) << reused.output;

  // Entries written straight into the bucket (someone with the broker, not the key): refused,
  // counted, and nothing changes. One names gw-1's key revoked, sealed with another key; one
  // puts a key of its own in force for gw-2; one is no sealed entry at all.
  const auto key_in_force = agent_key_of(*survivor, kAgent);
  ASSERT_TRUE(key_in_force.is_object());
  const auto refused_before = refused_entries(*survivor);
  {
    postwatch::aggregator::NatsLink link({nats.server_urls(), "forger", "", "", 5'000});
    ASSERT_TRUE(wait_until([&] { return link.connected(); }, 10s));
    std::string error;
    auto bucket = link.bucket("postwatch-ops-trust", 0, 3, error);
    ASSERT_TRUE(bucket) << error;
    auto forger = postwatch::SigningKey::generate();
    auto revoked = key_in_force;
    revoked.erase("state");
    revoked["revoked_at_ms"] = postwatch::now_utc_ms();
    const std::string gw1 = std::string("agent.") + kPost + "." + kAgent;
    ASSERT_TRUE(
        bucket->put(gw1, postwatch::aggregator::seal_entry(forger, "ops", gw1, json{{"keys", {revoked}}}.dump())));
    auto planted = revoked;
    planted["agent"] = "gw-2";
    planted["revoked_at_ms"] = 0;
    planted["public_key"] = postwatch::to_hex(forger.public_key());
    const std::string gw2 = std::string("agent.") + kPost + ".gw-2";
    ASSERT_TRUE(
        bucket->put(gw2, postwatch::aggregator::seal_entry(forger, "ops", gw2, json{{"keys", {planted}}}.dump())));
    ASSERT_TRUE(bucket->put(std::string("agent.") + kPost + ".gw-3", json{{"keys", {planted}}}.dump()));
  }
  EXPECT_TRUE(wait_until([&] { return refused_entries(*survivor) >= refused_before + 3; }, 10s))
      << survivor->get("/api/v1/cluster").dump();
  EXPECT_EQ(agent_key_of(*survivor, kAgent), key_in_force);
  EXPECT_TRUE(agent_key_of(*survivor, "gw-2").is_null());
  ASSERT_TRUE(run_agent(gw, 100, 20));  // still trusted, still confirmed
  EXPECT_EQ(stat(*survivor, "batches_refused_signature"), 0u);

  // The dead instance comes back with its store and takes the registry up again; then an
  // instance provisioned with another key joins. It says it disagrees and is not ready; the two
  // that agree name it and stay ready.
  dead = start(dead_dir, dead_name, dead_name == "agg-a" ? 0 : 1);
  EXPECT_TRUE(wait_until([&] { return agent_key_of(*dead, kAgent) == key_in_force; }, 20s))
      << dead->get("/api/v1/agent-keys").dump();
  ASSERT_TRUE(settles({survivor.get(), dead.get()}, nats.partitions(), 30s));

  // The agent rotates its key (decided by whichever holds bamako now): both instances put the new
  // key in force. Then an operator revokes it through one instance: both refuse it.
  auto rotated = run_shell(shell_quoted(kAgentBinary.string()) + " rotate-key --config " + shell_quoted(gw.string()) +
                           " --timeout-s 20 2>&1");
  ASSERT_EQ(rotated.status, 0) << rotated.output;
  for (auto* agg : {survivor.get(), dead.get()})
    EXPECT_TRUE(wait_until(
        [&] {
          auto k = agent_key_of(*agg, kAgent);
          return k.is_object() && k["key_id"] != key_in_force["key_id"] && k["rotated_from"] == key_in_force["key_id"];
        },
        10s))
        << agg->get("/api/v1/agent-keys").dump();
  auto revoked = http_call(dead->port(), feedhttp::verb::post,
                           std::string("/api/v1/agent-keys/") + kPost + "/" + kAgent + "/revoke");
  ASSERT_EQ(revoked.status, 200) << revoked.body;
  for (auto* agg : {survivor.get(), dead.get()})
    EXPECT_TRUE(wait_until([&] { return agent_key_of(*agg, kAgent).is_null(); }, 10s))
        << agg->get("/api/v1/agent-keys").dump();
  const auto port_c = free_port();
  std::vector<std::string> argv = {(binary_dir() / "aggregator" / "postwatch-aggregator").string(),
                                   "--broker",
                                   nats.mqtt_uri(2),
                                   "--http-port",
                                   std::to_string(port_c),
                                   "--client-id",
                                   "agg-c",
                                   "--data-dir",
                                   (dir_c.path() / "aggregator-data").string(),
                                   "--catalogue",
                                   catalogue_path().string(),
                                   "--tick-ms",
                                   "50"};
  for (const auto& arg : cluster_args(nats, "agg-c", false)) argv.push_back(arg);
  ChildProcess c(argv, dir_c.path() / "aggregator.log");
  json cluster_c;
  EXPECT_TRUE(wait_until(
      [&] {
        cluster_c = json::parse(http_get(port_c, "/api/v1/cluster").body, nullptr, false);
        return cluster_c.is_object() && cluster_c["trust"].value("key_agrees", true) == false &&
               cluster_c["trust"]["instances"].size() == 2;
      },
      60s))
      << cluster_c.dump() << "\n"
      << c.log();
  EXPECT_NE(cluster_c.value("problem", "").find("another aggregator key"), std::string::npos) << cluster_c.dump();
  EXPECT_NE(http_get(port_c, "/readyz").status, 200);
  EXPECT_TRUE(wait_until([&] { return c.log().find("sign with another aggregator key") != std::string::npos; }, 10s))
      << c.log();
  // It takes nothing from the registry the others sealed: it refuses their entries.
  EXPECT_GT(cluster_c["trust"].value("entries_refused", std::uint64_t{0}), 0u) << cluster_c.dump();
  EXPECT_TRUE(json::parse(http_get(port_c, "/api/v1/agent-keys").body, nullptr, false)["keys"].empty());
  for (auto* agg : {survivor.get(), dead.get()}) {
    json mine;
    EXPECT_TRUE(wait_until(
        [&] {
          mine = agg->get("/api/v1/cluster");
          return mine.is_object() && mine["trust"]["instances"].contains("agg-c") &&
                 mine["trust"]["instances"]["agg-c"]["agrees"] == false;
        },
        20s))
        << mine.dump();
    EXPECT_TRUE(mine["trust"]["key_agrees"].get<bool>()) << mine.dump();
    EXPECT_NE(mine.value("problem", "").find("agg-c"), std::string::npos) << mine.dump();
    EXPECT_EQ(http_get(agg->port(), "/readyz").status, 200);
  }
}
