// Scale-out (tracker issue 9, docs/scale-out.md): aggregator instances sharing one group
// against one real Mosquitto must show the same global goal state as one instance fed the
// same event stream, while instances join, and after one is SIGKILLed mid-stream.
//
// Every run has a plain single instance ("reference") on the same broker: it receives the
// same messages, so the comparison needs no second pass. Values only rise along the stream,
// so statuses do not depend on the path (hysteresis only acts on the way down).
#include "postwatch/catalogue.hpp"
#include "postwatch/topics.hpp"
#include "postwatch/wire_codec.hpp"
#include "support/aggregator_process.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>
#include <mqtt/async_client.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <cmath>
#include <csignal>
#include <sstream>
#include <thread>

using namespace postwatch;
using namespace postwatch::test;
using nlohmann::json;

namespace {

struct StreamPost {
  std::string id, region;
};

// A fixed stream: `posts` posts × 2 agents, each publishing batches of 5 events whose
// values never fall.
class EventStream {
 public:
  EventStream(const IndicatorCatalogue& catalogue, std::size_t posts, std::int64_t t0) : t0_(t0) {
    const auto& all = catalogue.posts();
    for (std::size_t i = 0; i < all.size() && posts_.size() < posts; i += all.size() / posts)
      posts_.push_back({all[i].id, all[i].region});
  }
  const std::vector<StreamPost>& posts() const { return posts_; }
  static constexpr int kAgents = 2;

  EventBatch batch(std::size_t post, int agent, std::uint64_t round) const {
    EventBatch b;
    b.post_id = posts_[post].id;
    b.agent_id = "a" + std::to_string(agent);
    b.sent_at_ms = 0;
    for (std::uint64_t k = 0; k < 5; ++k) {
      IndicatorEvent e;
      e.seq = round * 5 + k + 1;
      e.observed_at_ms = t0_ + static_cast<std::int64_t>(e.seq) * 10;
      auto mix = (post * 7 + static_cast<std::size_t>(agent) * 3 + e.seq) % 4;
      switch (k) {
        case 0: e.indicator = "cyber_incidents", e.kind = ValueKind::Count, e.number = 1 + mix % 3; break;
        case 1: e.indicator = "terrorist_attacks", e.kind = ValueKind::Count, e.number = 1; break;
        case 2:
          e.indicator = "conflict_early_warning_level", e.kind = ValueKind::Level;
          e.number = std::min<double>(5, 1 + static_cast<double>(round / 8) + (post % 2));
          break;
        case 3:
          e.indicator = "displaced_people", e.kind = ValueKind::Gauge;
          e.number = static_cast<double>(1000 * (round + 1) + post);
          break;
        default: e.indicator = "hybrid_incidents", e.kind = ValueKind::Count, e.number = static_cast<double>(mix);
      }
      b.events.push_back(std::move(e));
    }
    return b;
  }

 private:
  std::int64_t t0_;
  std::vector<StreamPost> posts_;
};

// Publishes rounds [from, to) of the stream, QoS 1, from this process.
class StreamPublisher {
 public:
  StreamPublisher(const MosquittoBroker& broker, const EventStream& stream)
      : stream_(stream), client_(broker.uri(), "cluster-test-publisher") {
    client_.connect(mqtt::connect_options_builder().clean_session(true).finalize())->wait();
  }
  ~StreamPublisher() {
    try {
      client_.disconnect()->wait();
    } catch (const mqtt::exception&) {
    }
  }
  void publish(std::uint64_t from, std::uint64_t to, std::chrono::milliseconds pause = {}) {
    for (std::uint64_t r = from; r < to; ++r) {
      std::vector<mqtt::delivery_token_ptr> tokens;
      for (std::size_t p = 0; p < stream_.posts().size(); ++p)
        for (int a = 1; a <= EventStream::kAgents; ++a) {
          auto bytes = encode_batch(stream_.batch(p, a, r));
          auto topic = topics::agent_topic(stream_.posts()[p].region, stream_.posts()[p].id, "a" + std::to_string(a),
                                           topics::Channel::Events);
          tokens.push_back(client_.publish(topic, bytes.data(), bytes.size(), 1, false));
        }
      for (auto& t : tokens) t->wait();
      rounds_done = r + 1;
      if (pause.count() > 0) std::this_thread::sleep_for(pause);  // pacing the load, not synchronising
    }
  }
  std::atomic<std::uint64_t> rounds_done{0};

 private:
  const EventStream& stream_;
  mqtt::async_client client_;
};

std::vector<std::string> cluster_args(const std::string& group, const std::string& instance) {
  return {"--cluster-group", group, "--instance-id", instance, "--partial-interval-ms", "100"};
}

// What an instance shows that must equal the reference: every goal's status, score and
// coverage; every streamed post's indicator values; every agent's event count and highest seq.
json global_view(AggregatorProcess& agg, const EventStream& stream) {
  json v;
  auto goals = agg.get("/api/v1/goals");
  if (!goals.is_object()) return nullptr;
  for (const auto& g : goals["goals"]) {
    double score = g["score"].is_number() ? std::round(g["score"].get<double>() * 1e6) / 1e6 : -1;
    v["goals"][std::to_string(g["id"].get<int>())] = {g["raw_status"], score, g["posts_reporting"],
                                                      g["posts_expected"]};
  }
  for (const auto& p : stream.posts()) {
    auto post = agg.get("/api/v1/posts/" + p.id);
    if (!post.is_object()) return nullptr;
    for (const auto& ind : post["indicators"]) v["posts"][p.id][ind["id"].get<std::string>()] = ind["value"];
    for (int a = 1; a <= EventStream::kAgents; ++a) {
      auto t = agg.agent_track(p.id + "/a" + std::to_string(a));
      v["agents"][p.id + "/a" + std::to_string(a)] = t.is_object() ? json{t["events"], t["highest_seq"]} : json();
    }
  }
  return v;
}

// The first difference between two views, for the failure message.
std::string first_difference(const json& want, const json& got) {
  if (got.is_null()) return "no answer";
  auto patch = json::diff(want, got);
  if (patch.empty()) return "";
  std::ostringstream out;
  out << patch.size() << " difference(s), first: " << patch[0].dump();
  return out.str();
}

class Cluster : public ::testing::Test {
 protected:
  Cluster()
      : catalogue(IndicatorCatalogue::load(catalogue_path())),
        stream(
            catalogue, 24,
            std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
                    .count() -
                60'000) {}

  // Waits until `agg` shows what the reference shows (the reference first settles on the
  // whole stream: every agent at its last seq).
  ::testing::AssertionResult converges(AggregatorProcess& ref, AggregatorProcess& agg, std::uint64_t rounds) {
    json want;
    std::string short_of;  // why the reference is not there yet, for the failure message
    bool settled = wait_until(
        [&] {
          want = global_view(ref, stream);
          if (want.is_null()) {
            short_of = "no answer from its API";
            return false;
          }
          for (const auto& [key, t] : want["agents"].items())
            if (!t.is_array() || t[1] != rounds * 5) {
              short_of = "agent " + key + " at " + t.dump() + ", want highest seq " + std::to_string(rounds * 5);
              return false;
            }
          return true;
        },
        std::chrono::seconds(20), std::chrono::milliseconds(100));
    if (!settled)
      return ::testing::AssertionFailure() << "the reference did not receive the whole stream (" << short_of
                                           << (ref.process().running() ? "" : "; it has exited") << "); its log:\n"
                                           << ref.process().log();
    std::string diff;
    bool same = wait_until(
        [&] {
          // Both again each time: goal scores follow the values one tick later.
          diff = first_difference(global_view(ref, stream), global_view(agg, stream));
          return diff.empty();
        },
        std::chrono::seconds(20), std::chrono::milliseconds(200));
    if (same) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "instance differs from the single-instance run: " << diff;
  }

  IndicatorCatalogue catalogue;
  EventStream stream;
  MosquittoBroker broker;
  TempDir ref_dir, dir1, dir2, dir3;
};

}  // namespace

TEST_F(Cluster, TwoThenThreeInstancesJoiningMidStreamShowTheSingleInstanceState) {
  AggregatorProcess ref(broker, ref_dir, {}, "reference");
  AggregatorProcess one(broker, dir1, cluster_args("g", "one"), "one");
  StreamPublisher pub(broker, stream);
  pub.publish(0, 10);

  // Two more instances join while the stream runs: posts move to them by release and
  // takeover, under load. The state is compared with two instances, then with three.
  std::thread load([&] { pub.publish(10, 25, std::chrono::milliseconds(40)); });
  ASSERT_TRUE(wait_until([&] { return pub.rounds_done >= 14; }, std::chrono::seconds(20)));
  AggregatorProcess two(broker, dir2, cluster_args("g", "two"), "two");
  load.join();
  for (auto* agg : {&one, &two}) EXPECT_TRUE(converges(ref, *agg, 25)) << agg->process().log();

  load = std::thread([&] { pub.publish(25, 40, std::chrono::milliseconds(40)); });
  ASSERT_TRUE(wait_until([&] { return pub.rounds_done >= 28; }, std::chrono::seconds(20)));
  AggregatorProcess three(broker, dir3, cluster_args("g", "three"), "three");
  load.join();
  for (auto* agg : {&one, &two, &three}) EXPECT_TRUE(converges(ref, *agg, 40)) << agg->process().log();

  // Each post has one owner: the owned counts add up to the catalogue, spread over all three.
  std::size_t owned = 0;
  for (auto* agg : {&one, &two, &three}) {
    auto c = agg->get("/api/v1/cluster");
    ASSERT_TRUE(c.is_object());
    EXPECT_EQ(c["members"].size(), 3u);
    EXPECT_TRUE(c["ready"].get<bool>());
    EXPECT_GT(c["posts"]["owned"].get<std::size_t>(), 0u);
    owned += c["posts"]["owned"].get<std::size_t>();
  }
  EXPECT_EQ(owned, catalogue.posts().size());
  EXPECT_GT(one.get("/api/v1/cluster")["counters"]["releases"].get<std::uint64_t>(), 0u);
}

TEST_F(Cluster, AKilledInstancesPostsAreTakenOverWithoutLossOrDoubleCounting) {
  AggregatorProcess ref(broker, ref_dir, {}, "reference");
  AggregatorProcess one(broker, dir1, cluster_args("k", "one"), "one");
  AggregatorProcess two(broker, dir2, cluster_args("k", "two"), "two");
  AggregatorProcess three(broker, dir3, cluster_args("k", "three"), "three");
  ASSERT_TRUE(wait_until(
      [&] {
        for (auto* agg : {&one, &two, &three}) {
          auto c = agg->get("/api/v1/cluster");
          if (!c.is_object() || c["members"].size() != 3 || !c["ready"].get<bool>()) return false;
        }
        return true;
      },
      std::chrono::seconds(20)));
  auto two_owned = two.get("/api/v1/cluster")["posts"]["owned"].get<std::size_t>();
  ASSERT_GT(two_owned, 0u);

  StreamPublisher pub(broker, stream);
  std::thread load([&] { pub.publish(0, 40, std::chrono::milliseconds(40)); });
  ASSERT_TRUE(wait_until([&] { return pub.rounds_done >= 15; }, std::chrono::seconds(20)));
  two.process().signal(SIGKILL);  // mid-stream: some of its events applied, not yet in a partial
  load.join();

  for (auto* agg : {&one, &three}) EXPECT_TRUE(converges(ref, *agg, 40)) << agg->process().log();

  std::uint64_t takeovers = 0;
  std::size_t owned = 0;
  for (auto* agg : {&one, &three}) {
    auto c = agg->get("/api/v1/cluster");
    EXPECT_EQ(c["members"].size(), 2u);
    takeovers += c["counters"]["takeovers"].get<std::uint64_t>();
    owned += c["posts"]["owned"].get<std::size_t>();
  }
  EXPECT_EQ(owned, catalogue.posts().size());
  EXPECT_GE(takeovers, catalogue.posts().size());  // the first claims plus two's posts
}
