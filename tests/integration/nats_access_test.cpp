// postwatch-broker-config --nats: the NATS cluster configuration it generates, served by real
// nats-server processes (three nodes on free loopback ports, given to the generator's own port
// options), checked with real clients: MQTT (Paho) as agents, the aggregator and operators speak
// it, and NATS (libnats) as the aggregators' JetStream link does. An agent's events land on its
// post's partition of the events stream; an agent publishes only its own topics and reads only its
// own confirmations, which the aggregator may publish retained; wrong logins are refused; the
// aggregator uses JetStream and key-value but not the MQTT listener's own streams; operators read
// the feed only; with --cafile/--certfile/--keyfile the client certificate's subject is the login.
#include "postwatch/event_partitions.hpp"
#include "support/mqtt_probe.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>
#include <nats/nats.h>

#include <csignal>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>

using namespace postwatch::test;
namespace fs = std::filesystem;
namespace partitions = postwatch::partitions;
using namespace std::chrono_literals;

namespace {

constexpr std::uint32_t kPartitions = 16;
const std::string kBamako = "postwatch/v1/sub-saharan-africa/bamako/gw-1";
const std::string kKabul = "postwatch/v1/asia/kabul/gw-1";
const std::string kParis = "postwatch/v1/europe/paris/gw-1";

fs::path generator() { return binary_dir() / "tools" / "broker_config" / "postwatch-broker-config"; }

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The subject the broker's mapping gives an agent's events (postwatch-events.<p>.<region>.<post>.<agent>).
std::string partition_subject(const std::string& region, const std::string& post, const std::string& agent) {
  auto s = partitions::partition_subjects(partitions::partition_of(post, kPartitions));
  s.pop_back();  // the '>'
  return s + region + "." + post + "." + agent;
}

std::string join(const std::vector<unsigned short>& ports) {
  std::string s;
  for (auto p : ports) s += (s.empty() ? "" : ",") + std::to_string(p);
  return s;
}

// What the generator wrote for a three-agent fleet, started: every node of it, stopped on destruction.
class GeneratedCluster {
 public:
  GeneratedCluster(const fs::path& dir, int nodes, const std::vector<std::string>& extra_args = {})
      : dir_(dir), out_(dir / "broker") {
    std::ofstream(dir / "fleet.csv") << "# post,agent\nbamako,gw-1\nkabul,gw-1\nparis,gw-1\n";
    std::set<unsigned short> taken;
    auto port = [&] {
      unsigned short p;
      do p = free_port();
      while (!taken.insert(p).second);
      return p;
    };
    for (int i = 0; i < nodes; ++i) {
      client_.push_back(port());
      route_.push_back(port());
      mqtt_.push_back(port());
      monitor_.push_back(port());
    }
    std::vector<std::string> args{generator().string(),
                                  "--nats",
                                  "--nodes",
                                  std::to_string(nodes),
                                  "--partitions",
                                  std::to_string(kPartitions),
                                  "--fleet",
                                  (dir / "fleet.csv").string(),
                                  "--out",
                                  out_.string(),
                                  "--operator",
                                  "ops-1",
                                  "--listen",
                                  "127.0.0.1",
                                  "--client-port",
                                  join(client_),
                                  "--route-port",
                                  join(route_),
                                  "--mqtt-port",
                                  join(mqtt_),
                                  "--monitor-port",
                                  join(monitor_)};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    ChildProcess gen(args, dir / "gen.log");
    if (gen.wait(60s) != 0) throw std::runtime_error("postwatch-broker-config failed:\n" + gen.log());
    generator_output_ = gen.log();
    for (int i = 0; i < nodes; ++i) {
      auto conf = out_ / ("nats-" + std::to_string(i + 1) + ".conf");
      nodes_.push_back(std::make_unique<ChildProcess>(std::vector<std::string>{"nats-server", "-c", conf.string()},
                                                      dir / ("nats-" + std::to_string(i + 1) + ".log")));
    }
    bool healthy = wait_until(
        [&] {
          for (std::size_t i = 0; i < nodes_.size(); ++i)
            if (!nodes_[i]->running() || http_get(monitor_[i], "/healthz").status != 200) return false;
          return true;
        },
        60s, 100ms);
    if (!healthy) throw std::runtime_error("the generated NATS cluster did not become healthy:\n" + logs());
  }
  ~GeneratedCluster() {
    for (auto& n : nodes_) n->signal(SIGTERM);
    for (auto& n : nodes_)
      if (n->wait(10s) == -1) n->signal(SIGKILL);
  }
  GeneratedCluster(const GeneratedCluster&) = delete;
  GeneratedCluster& operator=(const GeneratedCluster&) = delete;

  const fs::path& out() const { return out_; }
  const std::string& generator_output() const { return generator_output_; }
  std::string mqtt_uri(int i, const std::string& scheme = "tcp") const {
    return scheme + "://127.0.0.1:" + std::to_string(mqtt_[static_cast<std::size_t>(i)]);
  }
  unsigned short client_port(int i) const { return client_[static_cast<std::size_t>(i)]; }
  std::string secret(const std::string& user) const {
    std::ifstream in(out_ / "secrets" / (user + ".password"));
    std::string s;
    std::getline(in, s);
    return s;
  }
  std::string log(int i) const { return nodes_[static_cast<std::size_t>(i)]->log(); }
  std::string logs() const {
    std::string s;
    for (std::size_t i = 0; i < nodes_.size(); ++i) s += "--- node " + std::to_string(i + 1) + ":\n" + log(int(i));
    return s;
  }

 private:
  fs::path dir_, out_;
  std::vector<unsigned short> client_, route_, mqtt_, monitor_;
  std::string generator_output_;
  std::vector<std::unique_ptr<ChildProcess>> nodes_;
};

// An MQTT login as the agents speak it (MQTT 3.1.1); the test connects (to see a refusal).
ProbeOptions mqtt_3_1_1_login(const std::string& user, const std::string& password,
                              std::optional<ProbeTls> tls = std::nullopt) {
  ProbeOptions options;
  options.login(user, password).as_agent_speaks().connect_later().timeout(std::chrono::seconds(20));
  if (tls) options.over_tls(*tls);
  return options;
}

// Everything `client` received, as "topic|payload" (with "|retained" for a retained one).
std::set<std::string> received(MqttProbe& client) {
  std::set<std::string> out;
  for (const auto& m : client.messages()) out.insert(m.topic + "|" + m.payload + (m.retained ? "|retained" : ""));
  return out;
}

// A NATS connection through libnats, as the aggregators' JetStream link makes it.
class NatsClient {
 public:
  NatsClient(unsigned short port, const std::string& user, const std::string& password) {
    natsOptions* o = nullptr;
    natsOptions_Create(&o);
    auto url = "nats://127.0.0.1:" + std::to_string(port);
    natsOptions_SetURL(o, url.c_str());
    natsOptions_SetUserInfo(o, user.c_str(), password.c_str());
    natsOptions_SetAllowReconnect(o, false);
    natsOptions_SetTimeout(o, 10'000);
    status_ = natsConnection_Connect(&nc_, o);
    natsOptions_Destroy(o);
    if (status_ == NATS_OK) {
      jsOptions jo;
      jsOptions_Init(&jo);
      jo.Wait = 10'000;
      natsConnection_JetStream(&js_, nc_, &jo);
    }
  }
  ~NatsClient() {
    for (auto* s : subs_) {
      natsSubscription_Unsubscribe(s);
      natsSubscription_Destroy(s);
    }
    if (js_) jsCtx_Destroy(js_);
    if (nc_) {
      natsConnection_Close(nc_);
      natsConnection_Destroy(nc_);
    }
  }
  NatsClient(const NatsClient&) = delete;
  NatsClient& operator=(const NatsClient&) = delete;

  natsStatus status() const { return status_; }
  natsConnection* nc() { return nc_; }
  jsCtx* js() { return js_; }

  // A plain subscription; what arrives is recorded as "subject|payload". Flushed, so the node
  // has it before this returns.
  void record(const std::string& subject) {
    natsSubscription* sub = nullptr;
    ASSERT_EQ(natsConnection_Subscribe(&sub, nc_, subject.c_str(), &NatsClient::on_message, this), NATS_OK);
    subs_.push_back(sub);
    ASSERT_EQ(natsConnection_FlushTimeout(nc_, 10'000), NATS_OK);
  }
  bool got(const std::string& subject, const std::string& payload) {
    std::lock_guard lk(mu_);
    return received_.count(subject + "|" + payload) > 0;
  }
  std::set<std::string> received() {
    std::lock_guard lk(mu_);
    return received_;
  }

 private:
  static void on_message(natsConnection*, natsSubscription*, natsMsg* m, void* closure) {
    auto* self = static_cast<NatsClient*>(closure);
    {
      std::lock_guard lk(self->mu_);
      self->received_.insert(std::string(natsMsg_GetSubject(m)) + "|" +
                             std::string(natsMsg_GetData(m), static_cast<std::size_t>(natsMsg_GetDataLength(m))));
    }
    natsMsg_Destroy(m);
  }

  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
  natsStatus status_ = NATS_ERR;
  std::vector<natsSubscription*> subs_;
  std::mutex mu_;
  std::set<std::string> received_;
};

// The aggregators' events stream, as their JetStream link creates it (replicated work queue).
natsStatus create_events_stream(jsCtx* js, int replicas) {
  auto subjects = partitions::all_subjects();
  const char* list[] = {subjects.c_str()};
  std::string name(partitions::events_stream);
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = name.c_str();
  cfg.Subjects = list;
  cfg.SubjectsLen = 1;
  cfg.Replicas = replicas;
  cfg.Retention = js_WorkQueuePolicy;
  cfg.Storage = js_FileStorage;
  jsStreamInfo* si = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  auto s = js_AddStream(&si, js, &cfg, nullptr, &jerr);
  if (si) jsStreamInfo_Destroy(si);
  return s;
}

// The payload of the newest message on `subject` in the events stream ("" when none).
std::string last_event(jsCtx* js, const std::string& subject) {
  natsMsg* m = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  std::string name(partitions::events_stream);
  if (js_GetLastMsg(&m, js, name.c_str(), subject.c_str(), nullptr, &jerr) != NATS_OK) return "";
  std::string payload(natsMsg_GetData(m), static_cast<std::size_t>(natsMsg_GetDataLength(m)));
  natsMsg_Destroy(m);
  return payload;
}

std::string violation(const std::string& kind, const std::string& user, const std::string& subject) {
  return kind + " Violation - User \"" + user + "\", Subject \"" + subject + "\"";
}

}  // namespace

// A three-node cluster from the generator; each test has its own.
class NatsAccess : public ::testing::Test {
 protected:
  TempDir dir;
  std::unique_ptr<GeneratedCluster> cluster;

  void SetUp() override { cluster = std::make_unique<GeneratedCluster>(dir.path(), 3); }
  std::string secret(const std::string& user) { return cluster->secret(user); }
  // An MQTT login on node `node`; fails the test when refused.
  std::unique_ptr<MqttProbe> mqtt_login(int node, const std::string& id, const std::string& user) {
    auto c = std::make_unique<MqttProbe>(cluster->mqtt_uri(node), id, mqtt_3_1_1_login(user, secret(user)));
    try {
      c->connect();
    } catch (const mqtt::exception& e) {
      throw std::runtime_error("MQTT login " + user + " on node " + std::to_string(node + 1) + ": " + e.what() + "\n" +
                               cluster->logs());
    }
    return c;
  }
  std::unique_ptr<NatsClient> aggregator_link(int node) {
    auto c = std::make_unique<NatsClient>(cluster->client_port(node), "postwatch-aggregator",
                                          secret("postwatch-aggregator"));
    EXPECT_EQ(c->status(), NATS_OK) << cluster->log(node);
    return c;
  }
};

// The mapping and the agents' publish permissions together: events published over MQTT on one
// node arrive in the stream on the partition subject of the post (computed as the aggregator
// computes it), from agents of posts on different partitions.
TEST_F(NatsAccess, AgentEventsLandOnTheirPostsPartitionOfTheStream) {
  auto agg = aggregator_link(0);
  ASSERT_EQ(agg->status(), NATS_OK);
  ASSERT_EQ(create_events_stream(agg->js(), 3), NATS_OK) << nats_GetLastError(nullptr);
  auto bamako = mqtt_login(1, "bamako", "agent.bamako.gw-1");
  auto paris = mqtt_login(2, "paris", "agent.paris.gw-1");
  const auto bamako_subject = partition_subject("sub-saharan-africa", "bamako", "gw-1");
  const auto paris_subject = partition_subject("europe", "paris", "gw-1");
  ASSERT_NE(partitions::partition_of("bamako", kPartitions), partitions::partition_of("paris", kPartitions));

  // The stream's leader learns of the other nodes' publishers' interest asynchronously: the
  // agent publishes until its batch is in (a copy more or less changes nothing here).
  EXPECT_TRUE(wait_until(
      [&] {
        bamako->publish(kBamako + "/events", "batch-from-bamako");
        return last_event(agg->js(), bamako_subject) == "batch-from-bamako";
      },
      30s, 200ms))
      << cluster->logs();
  EXPECT_TRUE(wait_until(
      [&] {
        paris->publish(kParis + "/events", "batch-from-paris");
        return last_event(agg->js(), paris_subject) == "batch-from-paris";
      },
      30s, 200ms));
  // And the aggregator reads the agent's topic back from the subject.
  std::string topic;
  ASSERT_TRUE(partitions::events_topic(bamako_subject, topic));
  EXPECT_EQ(topic, kBamako + "/events");
}

// Publishing as another agent, on another agent's partition, on the wrong partition, as the
// aggregator (confirmations) or as the feed: each is refused; the agent's own messages pass, and
// arrive after anything it published before them would have.
TEST_F(NatsAccess, AgentPublishesOnlyItsOwnTopics) {
  auto agg = aggregator_link(0);
  ASSERT_EQ(agg->status(), NATS_OK);
  agg->record(partitions::all_subjects());
  agg->record("postwatch.v1.*.*.*.state");
  agg->record("postwatch.v1.*.*.*.heartbeat");
  agg->record("postwatch.v1.*.*.*.enrol");
  auto kabul = mqtt_login(0, "kabul", "agent.kabul.gw-1");
  ASSERT_TRUE(kabul->try_subscribe(kKabul + "/confirm"));
  auto ops = mqtt_login(0, "ops", "ops-1");
  ASSERT_TRUE(ops->try_subscribe("postwatch/v1/feed/#"));
  auto forger = mqtt_login(0, "forger", "agent.bamako.gw-1");

  const auto kabul_partition = partition_subject("asia", "kabul", "gw-1");
  auto wrong_partition =
      partitions::partition_subjects((partitions::partition_of("bamako", kPartitions) + 1) % kPartitions);
  wrong_partition.pop_back();
  wrong_partition += "sub-saharan-africa.bamako.gw-1";
  auto topic_of = [](std::string subject) {
    for (auto& c : subject) c = c == '.' ? '/' : c;
    return subject;
  };
  // MQTT topic -> the subject the node checks (after the mapping).
  const std::vector<std::pair<std::string, std::string>> forged = {
      {kKabul + "/events", kabul_partition},
      {kKabul + "/state", "postwatch.v1.asia.kabul.gw-1.state"},
      {kKabul + "/heartbeat", "postwatch.v1.asia.kabul.gw-1.heartbeat"},
      {topic_of(kabul_partition), kabul_partition},
      {topic_of(wrong_partition), wrong_partition},
      {kKabul + "/confirm", "postwatch.v1.asia.kabul.gw-1.confirm"},
      {kKabul + "/enrol", "postwatch.v1.asia.kabul.gw-1.enrol"},
      {kKabul + "/enrolled", "postwatch.v1.asia.kabul.gw-1.enrolled"},
      {"postwatch/v1/feed/goals/1", "postwatch.v1.feed.goals.1"},
  };
  for (const auto& [topic, subject] : forged) forger->publish(topic, "forged");
  // Unlike Mosquitto, which closes the offender's connection, nats-server acknowledges a denied
  // QoS 1 publish, drops it and logs it (before the acknowledgement).
  ASSERT_TRUE(forger->connected());
  for (const auto& [topic, subject] : forged)
    EXPECT_NE(cluster->log(0).find(violation("Publish", "agent.bamako.gw-1", subject)), std::string::npos)
        << topic << "\n"
        << cluster->log(0);

  forger->publish(kBamako + "/state", "genuine-state");
  forger->publish(kBamako + "/events", "genuine-events");
  forger->publish(kBamako + "/enrol", "genuine-enrol");  // its own enrolment request
  ASSERT_TRUE(wait_until(
      [&] {
        return agg->got("postwatch.v1.sub-saharan-africa.bamako.gw-1.state", "genuine-state") &&
               agg->got(partition_subject("sub-saharan-africa", "bamako", "gw-1"), "genuine-events") &&
               agg->got("postwatch.v1.sub-saharan-africa.bamako.gw-1.enrol", "genuine-enrol");
      },
      10s))
      << cluster->log(0);
  // One publisher, one subscriber connection, one node: the forged ones would have come first.
  EXPECT_EQ(agg->received().size(), 3u);
  for (const auto& r : agg->received()) EXPECT_EQ(r.find("forged"), std::string::npos) << r;

  auto agg_mqtt = mqtt_login(0, "agg", "postwatch-aggregator");
  agg_mqtt->publish(kKabul + "/confirm", "real-confirm");
  agg_mqtt->publish("postwatch/v1/feed/goals/1", "real-feed");
  ASSERT_TRUE(wait_until([&] { return kabul->got(kKabul + "/confirm", "real-confirm"); }, 10s));
  ASSERT_TRUE(wait_until([&] { return ops->got("postwatch/v1/feed/goals/1", "real-feed"); }, 10s));
  EXPECT_FALSE(kabul->got(kKabul + "/confirm", "forged"));
  EXPECT_FALSE(ops->got("postwatch/v1/feed/goals/1", "forged"));
}

// An agent subscribes to its own confirmations only: not another agent's, not all of them, not
// the feed, not the MQTT listener's internal delivery subjects.
TEST_F(NatsAccess, AgentReadsOnlyItsOwnConfirmations) {
  auto bamako = mqtt_login(1, "bamako", "agent.bamako.gw-1");
  EXPECT_FALSE(bamako->try_subscribe(kKabul + "/confirm"));
  EXPECT_FALSE(bamako->try_subscribe("postwatch/v1/+/+/+/confirm"));
  EXPECT_FALSE(bamako->try_subscribe("postwatch/v1/feed/#"));
  EXPECT_FALSE(bamako->try_subscribe(kKabul + "/events", 0));
  EXPECT_FALSE(bamako->try_subscribe("$MQTT/sub/#"));
  EXPECT_FALSE(bamako->try_subscribe("#"));
  EXPECT_NE(
      cluster->log(1).find(violation("Subscription", "agent.bamako.gw-1", "postwatch.v1.asia.kabul.gw-1.confirm")),
      std::string::npos)
      << cluster->log(1);
  ASSERT_TRUE(bamako->try_subscribe(kBamako + "/confirm", 1)) << cluster->log(1);
  // Its enrolment answer too, and no other agent's.
  EXPECT_FALSE(bamako->try_subscribe(kKabul + "/enrolled"));
  ASSERT_TRUE(bamako->try_subscribe(kBamako + "/enrolled", 1)) << cluster->log(1);

  // The aggregator confirms to kabul first, then to bamako: by the time bamako has its own, it
  // would have had kabul's too (one publisher, and bamako's subscriptions on one node).
  auto agg = mqtt_login(1, "agg", "postwatch-aggregator");
  agg->publish(kKabul + "/confirm", "to-kabul");
  agg->publish(kBamako + "/confirm", "to-bamako");
  agg->publish(kKabul + "/enrolled", "answer-to-kabul");
  agg->publish(kBamako + "/enrolled", "answer-to-bamako");
  ASSERT_TRUE(wait_until([&] { return bamako->got(kBamako + "/confirm", "to-bamako"); }, 10s)) << cluster->logs();
  ASSERT_TRUE(wait_until([&] { return bamako->got(kBamako + "/enrolled", "answer-to-bamako"); }, 10s))
      << cluster->logs();
  EXPECT_FALSE(bamako->got(kKabul + "/confirm", "to-kabul"));
  EXPECT_FALSE(bamako->got(kKabul + "/enrolled", "answer-to-kabul"));
  EXPECT_EQ(received(*bamako).size(), 2u);
}

// The aggregator's retained confirmation reaches the agent's QoS 1 subscription: live, on
// another node; at a later SUBSCRIBE on the publisher's node at once, and on another node once
// that node has the retained message (it follows the replicated retained-messages stream).
TEST_F(NatsAccess, RetainedConfirmationReachesTheAgentsQos1Subscription) {
  auto agg = mqtt_login(0, "agg", "postwatch-aggregator");
  auto live = mqtt_login(2, "bamako-live", "agent.bamako.gw-1");
  ASSERT_TRUE(live->try_subscribe(kBamako + "/confirm", 1));
  agg->publish(kBamako + "/confirm", "confirm-1", 1, true);
  EXPECT_TRUE(wait_until([&] { return live->got(kBamako + "/confirm", "confirm-1"); }, 10s)) << cluster->logs();
  live.reset();

  auto same_node = mqtt_login(0, "bamako-later", "agent.bamako.gw-1");
  ASSERT_TRUE(same_node->try_subscribe(kBamako + "/confirm", 1));
  EXPECT_TRUE(wait_until([&] { return same_node->got_retained(kBamako + "/confirm", "confirm-1"); }, 10s));
  same_node.reset();

  int attempt = 0;
  EXPECT_TRUE(wait_until(
      [&] {
        auto other = mqtt_login(2, "bamako-other-" + std::to_string(++attempt), "agent.bamako.gw-1");
        return other->try_subscribe(kBamako + "/confirm", 1) &&
               wait_until([&] { return other->got_retained(kBamako + "/confirm", "confirm-1"); }, 1s);
      },
      20s));
}

// Wrong or missing credentials are refused on the MQTT listener; agents' and operators' logins
// work over MQTT only; the aggregator's works over NATS too (its JetStream link). The secrets are
// the owner's, the nodes' files hold bcrypt hashes, not the passwords.
TEST_F(NatsAccess, WrongCredentialsAndWrongProtocolsAreRefused) {
  auto refused = [&](const std::string& user, const std::string& password) {
    MqttProbe c(cluster->mqtt_uri(0), "refused", mqtt_3_1_1_login(user, password));
    try {
      c.connect();
      return false;
    } catch (const mqtt::exception&) {
      return true;
    }
  };
  EXPECT_TRUE(refused("agent.bamako.gw-1", "not-the-password"));
  EXPECT_TRUE(refused("agent.bamako.gw-1", secret("agent.kabul.gw-1")));
  EXPECT_TRUE(refused("nobody", "whatever"));
  EXPECT_TRUE(refused("", ""));
  EXPECT_FALSE(refused("agent.bamako.gw-1", secret("agent.bamako.gw-1")));  // the right one does get in

  EXPECT_NE(NatsClient(cluster->client_port(0), "agent.bamako.gw-1", secret("agent.bamako.gw-1")).status(), NATS_OK);
  EXPECT_NE(NatsClient(cluster->client_port(0), "ops-1", secret("ops-1")).status(), NATS_OK);
  EXPECT_NE(NatsClient(cluster->client_port(0), "postwatch-aggregator", "not-the-password").status(), NATS_OK);
  EXPECT_EQ(NatsClient(cluster->client_port(2), "postwatch-aggregator", secret("postwatch-aggregator")).status(),
            NATS_OK);

  for (const auto& user : {"agent.bamako.gw-1", "postwatch-aggregator", "ops-1"}) {
    auto perms = fs::status(cluster->out() / "secrets" / (std::string(user) + ".password")).permissions();
    EXPECT_EQ(perms & (fs::perms::group_all | fs::perms::others_all), fs::perms::none) << user;
  }
  auto conf = read_text(cluster->out() / "nats-1.conf");
  EXPECT_EQ(fs::status(cluster->out() / "nats-1.conf").permissions() & fs::perms::others_all, fs::perms::none);
  EXPECT_EQ(conf.find(secret("agent.bamako.gw-1")), std::string::npos);
  EXPECT_EQ(conf.find(secret("postwatch-aggregator")), std::string::npos);
  EXPECT_NE(conf.find("password: \"$2b$"), std::string::npos);
  EXPECT_EQ(cluster->log(0).find("Plaintext passwords detected"), std::string::npos);
}

// What the aggregators' JetStream link does (docs/scale-out.md), as postwatch-aggregator: the
// events stream, a durable consumer of a partition with acknowledgements, key-value buckets
// (create, compare-and-set, get, keys, delete, watch). The MQTT listener's own streams (sessions,
// QoS 1 and retained messages) are out of its reach.
TEST_F(NatsAccess, AggregatorUsesJetStreamAndKeyValueButNotTheMqttStreams) {
  auto agg = aggregator_link(0);
  ASSERT_EQ(agg->status(), NATS_OK);
  auto* js = agg->js();
  jsErrCode jerr = static_cast<jsErrCode>(0);
  ASSERT_EQ(create_events_stream(js, 3), NATS_OK) << nats_GetLastError(nullptr);

  kvStore* kv = nullptr;
  kvConfig kc;
  kvConfig_Init(&kc);
  kc.Bucket = "postwatch-test-leases";
  kc.History = 1;
  kc.Replicas = 3;
  ASSERT_EQ(js_CreateKeyValue(&kv, js, &kc), NATS_OK) << nats_GetLastError(nullptr);
  std::unique_ptr<kvStore, void (*)(kvStore*)> kv_guard(kv, kvStore_Destroy);
  kvWatcher* watcher = nullptr;
  ASSERT_EQ(kvStore_WatchAll(&watcher, kv, nullptr), NATS_OK);
  std::unique_ptr<kvWatcher, void (*)(kvWatcher*)> watcher_guard(watcher, kvWatcher_Destroy);
  std::uint64_t rev = 0;
  EXPECT_EQ(kvStore_Create(&rev, kv, "p8", "instance-a", 10), NATS_OK);
  EXPECT_EQ(kvStore_Update(&rev, kv, "p8", "instance-b", 10, rev), NATS_OK);
  EXPECT_EQ(kvStore_Put(&rev, kv, "p9", "instance-b", 10), NATS_OK);
  kvEntry* e = nullptr;
  ASSERT_EQ(kvStore_Get(&e, kv, "p8"), NATS_OK);
  EXPECT_EQ(std::string(static_cast<const char*>(kvEntry_Value(e)), static_cast<std::size_t>(kvEntry_ValueLen(e))),
            "instance-b");
  kvEntry_Destroy(e);
  kvKeysList keys{};
  ASSERT_EQ(kvStore_Keys(&keys, kv, nullptr), NATS_OK);
  EXPECT_EQ(keys.Count, 2);
  kvKeysList_Destroy(&keys);
  EXPECT_EQ(kvStore_Delete(kv, "p9"), NATS_OK);
  // The watcher sees where each key ended. Not every step: libnats resets an ordered consumer
  // that misses a heartbeat, and the new one starts from the last value per key.
  std::map<std::string, std::string> watched;
  EXPECT_TRUE(wait_until(
      [&] {
        kvEntry* w = nullptr;
        if (kvWatcher_Next(&w, watcher, 100) == NATS_OK && w) {
          watched[kvEntry_Key(w)] = kvEntry_Operation(w) == kvOp_Put
                                        ? std::string(static_cast<const char*>(kvEntry_Value(w)),
                                                      static_cast<std::size_t>(kvEntry_ValueLen(w)))
                                        : "(deleted)";
          kvEntry_Destroy(w);
        }
        return watched["p8"] == "instance-b" && watched["p9"] == "(deleted)";
      },
      20s));

  // A partition's durable push consumer, replicated like the stream, read by a plain subscription
  // on its deliver subject and acknowledged on each message's reply subject, as the aggregators'
  // link does (aggregator/src/cluster/nats_link.cpp).
  auto bamako = mqtt_login(0, "bamako", "agent.bamako.gw-1");
  const auto subject = partition_subject("sub-saharan-africa", "bamako", "gw-1");
  ASSERT_TRUE(wait_until(
      [&] {
        bamako->publish(kBamako + "/events", "batch");
        return last_event(js, subject) == "batch";
      },
      30s, 200ms));
  const auto partition = partitions::partition_of("bamako", kPartitions);
  const auto filter = partitions::partition_subjects(partition);
  const auto deliver = "postwatch-deliver.test.p" + std::to_string(partition);
  const std::string stream(partitions::events_stream), durable = "postwatch-test-p" + std::to_string(partition);
  jsConsumerConfig cc;
  jsConsumerConfig_Init(&cc);
  cc.Durable = durable.c_str();
  cc.FilterSubject = filter.c_str();
  cc.DeliverSubject = deliver.c_str();
  cc.DeliverPolicy = js_DeliverAll;
  cc.AckPolicy = js_AckExplicit;
  cc.MaxDeliver = -1;
  cc.Replicas = 3;
  jsConsumerInfo* ci = nullptr;
  ASSERT_EQ(js_AddConsumer(&ci, js, stream.c_str(), &cc, nullptr, &jerr), NATS_OK) << nats_GetLastError(nullptr);
  jsConsumerInfo_Destroy(ci);
  natsSubscription* sub = nullptr;
  ASSERT_EQ(natsConnection_SubscribeSync(&sub, agg->nc(), deliver.c_str()), NATS_OK);
  std::unique_ptr<natsSubscription, void (*)(natsSubscription*)> sub_guard(sub, natsSubscription_Destroy);
  // Everything delivered is acknowledged; the work queue then holds nothing more.
  int acked = 0;
  std::uint64_t left = 0;
  EXPECT_TRUE(wait_until(
      [&] {
        natsMsg* m = nullptr;
        if (natsSubscription_NextMsg(&m, sub, 100) == NATS_OK) {
          const char* reply = natsMsg_GetReply(m);
          if (reply && natsConnection_PublishString(agg->nc(), reply, "+ACK") == NATS_OK) ++acked;
          natsMsg_Destroy(m);
          return false;
        }
        jsStreamInfo* si = nullptr;
        if (js_GetStreamInfo(&si, js, stream.c_str(), nullptr, &jerr) != NATS_OK) return false;
        left = si->State.Msgs;
        jsStreamInfo_Destroy(si);
        return acked > 0 && left == 0;
      },
      15s))
      << acked << " acknowledged, " << left << " left in the stream\n"
      << cluster->log(0);
  EXPECT_EQ(js_DeleteConsumer(js, stream.c_str(), durable.c_str(), nullptr, &jerr), NATS_OK);

  // The MQTT listener's streams: the request is denied (and so never answered).
  jsOptions quick;
  jsOptions_Init(&quick);
  quick.Wait = 1000;
  jsStreamInfo* si = nullptr;
  EXPECT_NE(js_GetStreamInfo(&si, js, "$MQTT_sess", &quick, &jerr), NATS_OK);
  EXPECT_NE(cluster->log(0).find(violation("Publish", "postwatch-aggregator", "$JS.API.STREAM.INFO.$MQTT_sess")),
            std::string::npos);
  natsMsg* m = nullptr;
  EXPECT_NE(js_GetLastMsg(&m, js, "$MQTT_rmsgs", "$MQTT.rmsgs", &quick, &jerr), NATS_OK);
}

// Operators read the feed, the aggregator's retained snapshots included, and nothing else.
TEST_F(NatsAccess, OperatorsReadTheFeedOnly) {
  auto agg = mqtt_login(0, "agg", "postwatch-aggregator");
  agg->publish("postwatch/v1/feed/goals/7", "{\"status\":\"red\"}", 1, true);
  auto ops = mqtt_login(0, "ops", "ops-1");
  EXPECT_FALSE(ops->try_subscribe("postwatch/v1/+/+/+/state"));
  EXPECT_FALSE(ops->try_subscribe(kBamako + "/confirm"));
  ASSERT_TRUE(ops->try_subscribe("postwatch/v1/feed/#", 1)) << cluster->log(0);
  EXPECT_TRUE(wait_until([&] { return ops->got_retained("postwatch/v1/feed/goals/7", "{\"status\":\"red\"}"); }, 10s));
  ops->publish("postwatch/v1/feed/goals/7", "forged");
  EXPECT_NE(cluster->log(0).find(violation("Publish", "ops-1", "postwatch.v1.feed.goals.7")), std::string::npos);
}

// With --cafile/--certfile/--keyfile the MQTT listener requires a client certificate from the CA
// and logs it in as the user named by its whole subject (nats-server 2.9's verify_and_map), which
// the generator writes from --cert-dn. A certificate whose CN alone names the login is refused,
// where Mosquitto's use_identity_as_username would take it. One node: TLS is per node.
TEST(NatsAccessTls, TheCertificatesSubjectIsTheLogin) {
  TempDir dir;
  const auto certs = dir.path() / "certs";
  fs::create_directories(certs);
  std::ofstream(certs / "make.sh") << R"(set -e
ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
openssl req -x509 $ec -keyout ca.key -out ca.pem -days 30 -subj "/CN=Postwatch Fleet Test CA"
openssl req -x509 $ec -keyout other-ca.key -out other-ca.pem -days 30 -subj "/CN=Unrelated CA"
openssl req -new $ec -keyout server.key -out server.csr -subj "/CN=127.0.0.1"
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' > server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 30 -extfile server.ext
printf 'extendedKeyUsage=clientAuth\n' > client.ext
client() {  # file, subject, issuing CA
  openssl req -new $ec -keyout "$1.key" -out "$1.csr" -subj "$2"
  openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial -out "$1.pem" -days 30 -extfile client.ext
}
client bamako "/O=Postwatch/OU=bamako/CN=agent.bamako.gw-1" ca
client aggregator "/O=Postwatch/CN=postwatch-aggregator" ca
client cn-only "/CN=agent.bamako.gw-1" ca
client impostor "/O=Postwatch/OU=bamako/CN=agent.bamako.gw-1" other-ca
)";
  auto made = run_shell("cd " + shell_quoted(certs.string()) + " && sh make.sh");
  ASSERT_EQ(made.status, 0) << made.output;
  GeneratedCluster cluster(dir.path(), 1,
                           {"--cafile", (certs / "ca.pem").string(), "--certfile", (certs / "server.pem").string(),
                            "--keyfile", (certs / "server.key").string()});
  EXPECT_NE(cluster.generator_output().find("posture: mutual TLS"), std::string::npos) << cluster.generator_output();
  auto ssl = [&](const std::string& cert) {
    ProbeTls tls(certs / "ca.pem");
    tls.verify_host = false;
    if (!cert.empty()) {
      tls.cert = certs / (cert + ".pem");
      tls.key = certs / (cert + ".key");
    }
    return tls;
  };
  const auto uri = cluster.mqtt_uri(0, "ssl");
  auto agg_link = std::make_unique<NatsClient>(cluster.client_port(0), "postwatch-aggregator",
                                               cluster.secret("postwatch-aggregator"));
  ASSERT_EQ(agg_link->status(), NATS_OK);
  agg_link->record("postwatch.v1.*.*.*.state");

  MqttProbe bamako(uri, "bamako", mqtt_3_1_1_login("", "", ssl("bamako")));
  ASSERT_NO_THROW(bamako.connect()) << cluster.log(0);
  const std::string dn = "CN=agent.bamako.gw-1,OU=bamako,O=Postwatch";
  bamako.publish(kKabul + "/state", "forged");
  EXPECT_NE(cluster.log(0).find(violation("Publish", dn, "postwatch.v1.asia.kabul.gw-1.state")), std::string::npos)
      << cluster.log(0);
  bamako.publish(kBamako + "/state", "online");
  EXPECT_TRUE(
      wait_until([&] { return agg_link->got("postwatch.v1.sub-saharan-africa.bamako.gw-1.state", "online"); }, 10s));
  EXPECT_FALSE(agg_link->got("postwatch.v1.asia.kabul.gw-1.state", "forged"));
  ASSERT_TRUE(bamako.try_subscribe(kBamako + "/confirm", 1));

  MqttProbe aggregator(uri, "aggregator", mqtt_3_1_1_login("", "", ssl("aggregator")));
  ASSERT_NO_THROW(aggregator.connect()) << cluster.log(0);
  aggregator.publish(kBamako + "/confirm", "confirmed", 1, true);
  EXPECT_TRUE(wait_until([&] { return bamako.got(kBamako + "/confirm", "confirmed"); }, 10s));

  auto refused = [&](const std::string& cert, const std::string& user, const std::string& password) {
    MqttProbe c(uri, "refused-" + cert, mqtt_3_1_1_login(user, password, ssl(cert)));
    try {
      c.connect();
      return false;
    } catch (const mqtt::exception&) {
      return true;
    }
  };
  EXPECT_TRUE(refused("", "agent.bamako.gw-1", cluster.secret("agent.bamako.gw-1")));  // no certificate
  EXPECT_TRUE(refused("cn-only", "", ""));   // the CN alone is not the subject of any login
  EXPECT_TRUE(refused("impostor", "", ""));  // another CA
  // The subject's login has no password: it is for the MQTT listener only.
  EXPECT_NE(NatsClient(cluster.client_port(0), dn, "").status(), NATS_OK);
}

// Mosquitto stays the default; --nats options are refused without --nats and Mosquitto's with it;
// the default ports are 4222/6222/1883/8222 plus the node's offset.
TEST(NatsAccessOptions, MosquittoStaysTheDefaultAndOptionsAreChecked) {
  TempDir dir;
  std::ofstream(dir.path() / "fleet.csv") << "bamako,gw-1\n";
  auto run = [&](const std::string& out, std::vector<std::string> extra) {
    std::vector<std::string> args{generator().string(), "--fleet", (dir.path() / "fleet.csv").string(), "--out",
                                  (dir.path() / out).string()};
    args.insert(args.end(), extra.begin(), extra.end());
    ChildProcess gen(args, dir.path() / (out + ".log"));
    int status = gen.wait(60s);
    return std::make_pair(status, gen.log());
  };
  auto [rc, log] = run("mosquitto", {});
  EXPECT_EQ(rc, 0) << log;
  EXPECT_TRUE(fs::exists(dir.path() / "mosquitto" / "mosquitto.conf"));
  EXPECT_FALSE(fs::exists(dir.path() / "mosquitto" / "nats-1.conf"));

  std::tie(rc, log) = run("bad1", {"--nodes", "3"});
  EXPECT_EQ(rc, 2);
  EXPECT_NE(log.find("--nodes needs --nats"), std::string::npos) << log;
  std::tie(rc, log) = run("bad2", {"--nats", "--plain-port", "1884"});
  EXPECT_EQ(rc, 2);
  EXPECT_NE(log.find("--plain-port is for Mosquitto"), std::string::npos) << log;
  std::tie(rc, log) = run("bad3", {"--nats", "--client-port", "4222,4300"});
  EXPECT_EQ(rc, 2);
  EXPECT_NE(log.find("--client-port: one port, or one per node (3)"), std::string::npos) << log;

  std::tie(rc, log) = run("nats", {"--nats"});
  ASSERT_EQ(rc, 0) << log;
  EXPECT_FALSE(fs::exists(dir.path() / "nats" / "nats-4.conf"));
  auto conf = read_text(dir.path() / "nats" / "nats-2.conf");
  for (const auto& want : {"server_name: \"postwatch-2\"", "listen: \"0.0.0.0:4223\"", "http: \"127.0.0.1:8223\"",
                           "listen: \"0.0.0.0:6223\"", "listen: \"0.0.0.0:1884\"", "@127.0.0.1:6222\"",
                           "@127.0.0.1:6224\"", "consumer_replicas: 1", "\"postwatch.v1.*.*.*.events\": "})
    EXPECT_NE(conf.find(want), std::string::npos) << want << "\n" << conf;
  EXPECT_NE(conf.find((fs::absolute(dir.path() / "nats" / "jetstream" / "nats-2")).string()), std::string::npos);
  EXPECT_EQ(conf.find("tls {"), std::string::npos);
  EXPECT_NE(log.find("posture: PLAINTEXT MQTT"), std::string::npos) << log;
}
