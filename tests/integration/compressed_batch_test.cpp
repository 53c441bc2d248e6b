// Compressed batches over a real broker to the real aggregator (docs/wire-format.md,
// "PackedBatch"): an agent set to zstd-dictionary is confirmed and switches to the dictionary
// once the aggregator names it; one on another catalogue stays without it and loses nothing;
// a bomb, a truncated frame and an unknown dictionary are refused with their reasons while the
// aggregator goes on.
#include "postwatch/agent/agent.hpp"
#include "postwatch/agent/memory_backlog.hpp"
#include "postwatch/batch_packing.hpp"
#include "postwatch/wire/postwatch_packed_generated.h"
#include "support/aggregator_process.hpp"
#include "support/loopback_agent_config.hpp"
#include "support/mqtt_probe.hpp"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <zstd.h>

#include <fstream>
#include <mutex>

using namespace postwatch;
using namespace postwatch::test;
using nlohmann::json;

namespace {

std::shared_ptr<const IndicatorCatalogue> our_catalogue() {
  static const auto c = std::make_shared<const IndicatorCatalogue>(IndicatorCatalogue::load(catalogue_path()));
  return c;
}

// Every events payload the probe saw, as the dictionary id it was packed with (-1: plain).
std::vector<std::int64_t> dictionaries_seen(MqttProbe& tap) {
  std::vector<std::int64_t> out;
  for (const auto& m : tap.messages()) {
    std::span<const std::uint8_t> bytes{reinterpret_cast<const std::uint8_t*>(m.payload.data()), m.payload.size()};
    // Both arms int64: with a uint32 arm, -1 would become 4294967295 (a plain batch misread).
    out.push_back(is_packed_batch(bytes) ? std::int64_t{wire::v1::GetPackedBatch(bytes.data())->dictionary_id()}
                                         : std::int64_t{-1});
  }
  return out;
}

std::unique_ptr<agent::Agent> compressing_agent(const std::string& uri, const std::string& id) {
  auto cfg = loopback_agent_config(uri, id, "bamako");
  cfg.batch_max_delay = std::chrono::milliseconds(10);
  cfg.compression = BatchCompression::ZstdDictionary;
  auto a = std::make_unique<agent::Agent>(cfg, our_catalogue(), std::make_unique<agent::MemoryBacklog>(100000),
                                          spdlog::default_logger());
  a->start();
  return a;
}

// Submits `n` level readings and waits until the aggregator confirmed all of them.
bool submit_and_confirm(agent::Agent& a, int n) {
  for (int i = 0; i < n; ++i)
    if (!a.submit({0, 0, "terrorism_threat_level", ValueKind::Level, double(1 + i % 5), "", "", {}}).accepted)
      return false;
  const auto target = a.stats().accepted;
  return wait_until([&] { return a.stats().confirmed_through_seq >= target; }, std::chrono::seconds(20));
}

// gbvs.json with one indicator added: another catalogue, another dictionary.
std::filesystem::path other_catalogue(const TempDir& dir) {
  std::ifstream in(catalogue_path());
  auto j = json::parse(in);
  auto added = j["indicators"][0];
  added["id"] = added["id"].get<std::string>() + "_b";
  j["indicators"].push_back(added);
  auto path = dir.path() / "other-catalogue.json";
  std::ofstream(path) << j.dump();
  return path;
}

}  // namespace

TEST(CompressedBatches, AnAgentUsesTheDictionaryOnceTheAggregatorNamesItAndIsConfirmed) {
  TempDir dir;
  MosquittoBroker broker;
  AggregatorProcess aggregator(broker, dir);
  MqttProbe tap(broker.uri(), "events-tap", ProbeOptions().subscribe("postwatch/v1/+/+/+/events"));
  auto agent = compressing_agent(broker.uri(), "zd-1");
  ASSERT_TRUE(submit_and_confirm(*agent, 1));  // before any confirmation: zstd without the dictionary
  ASSERT_TRUE(submit_and_confirm(*agent, 300));
  const auto ours = BatchDictionary::for_catalogue(*our_catalogue())->id();
  const auto seen = dictionaries_seen(tap);
  ASSERT_GE(seen.size(), 2u);
  // The first batch cannot know the aggregator's dictionary: it went plain or compressed
  // without one (-1 or 0), whichever was smaller for its one event.
  EXPECT_TRUE(seen.front() == -1 || seen.front() == 0) << seen.front();
  EXPECT_EQ(seen.back(), ours);
  const auto packed = static_cast<std::size_t>(std::count(seen.begin(), seen.end(), std::int64_t{ours}));
  EXPECT_EQ(packed, seen.size() - 1) << "every batch after the first confirmation uses the dictionary";

  auto stats = aggregator.get("/api/v1/stats");
  EXPECT_EQ(stats["events_accepted"], 301);
  EXPECT_EQ(stats["batches_compressed"], packed + (seen.front() == 0 ? 1 : 0));
  EXPECT_LT(stats["compressed_bytes_received"].get<std::uint64_t>(),
            stats["compressed_bytes_unpacked"].get<std::uint64_t>() / 2)
      << stats.dump();
  EXPECT_EQ(stats["batches_rejected"], 0);
}

TEST(CompressedBatches, AnAgentOnAnotherCatalogueCompressesWithoutItsDictionaryAndLosesNothing) {
  TempDir dir;
  MosquittoBroker broker;
  AggregatorProcess aggregator(broker, dir, {"--catalogue", other_catalogue(dir).string()});
  MqttProbe tap(broker.uri(), "events-tap", ProbeOptions().subscribe("postwatch/v1/+/+/+/events"));
  auto agent = compressing_agent(broker.uri(), "zd-2");
  ASSERT_TRUE(submit_and_confirm(*agent, 1));
  ASSERT_TRUE(submit_and_confirm(*agent, 200));
  const auto seen = dictionaries_seen(tap);
  ASSERT_FALSE(seen.empty());
  for (auto d : seen) EXPECT_LE(d, 0) << "a dictionary the aggregator does not hold";
  EXPECT_GT(std::count(seen.begin(), seen.end(), 0), 0) << "compressed without it";
  auto stats = aggregator.get("/api/v1/stats");
  EXPECT_EQ(stats["events_accepted"], 201);
  EXPECT_EQ(stats["batches_undecodable"]["unknown_dictionary"], 0);
}

TEST(CompressedBatches, ABombATruncatedFrameAndAnUnknownDictionaryAreRefusedWithTheirReasons) {
  TempDir dir;
  MosquittoBroker broker;
  AggregatorProcess aggregator(broker, dir);
  const std::string topic = "postwatch/v1/sub-saharan-africa/bamako/raw-1/events";
  EventBatch b{"raw-1", "bamako", 0, {}};
  b.events.push_back({1, 0, "terrorism_threat_level", ValueKind::Level, 4, "", "", {}});
  const auto plain = encode_batch(b);
  auto envelope = [](const std::vector<std::uint8_t>& frame, std::uint32_t declared, std::uint32_t dict) {
    flatbuffers::FlatBufferBuilder fbb;
    auto data = fbb.CreateVector(frame);
    wire::v1::FinishPackedBatchBuffer(fbb,
                                      wire::v1::CreatePackedBatch(fbb, 1, wire::v1::Codec::Zstd, declared, dict, data));
    return std::string(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
  };
  std::vector<std::uint8_t> zeros(16u << 20, 0), bomb(ZSTD_compressBound(zeros.size()));
  bomb.resize(ZSTD_compress(bomb.data(), bomb.size(), zeros.data(), zeros.size(), 3));
  BatchPacker packer;
  const auto good = packer.pack(plain);
  const auto* g = wire::v1::GetPackedBatch(good.data());
  std::vector<std::uint8_t> frame(g->data()->begin(), g->data()->end());
  std::vector<std::uint8_t> cut(frame.begin(), frame.end() - 3);

  MqttProbe raw(broker.uri(), "raw-publisher");
  raw.publish(topic, envelope(bomb, 1000, 0));
  raw.publish(topic, envelope(cut, g->plain_size(), 0));
  raw.publish(topic, envelope(frame, g->plain_size(), 0x12345678));
  ASSERT_TRUE(
      wait_until([&] { return aggregator.get("/api/v1/stats")["batches_rejected"] == 3; }, std::chrono::seconds(10)))
      << aggregator.get("/api/v1/stats").dump();
  auto stats = aggregator.get("/api/v1/stats");
  EXPECT_EQ(stats["batches_undecodable"]["oversized"], 1);
  EXPECT_EQ(stats["batches_undecodable"]["corrupt_frame"], 1);
  EXPECT_EQ(stats["batches_undecodable"]["unknown_dictionary"], 1);
  EXPECT_EQ(stats["batches_compressed"], 0);
  const auto log = aggregator.process().log();
  EXPECT_NE(log.find("oversized compressed payload"), std::string::npos) << log;
  EXPECT_NE(log.find("corrupt_frame compressed payload"), std::string::npos) << log;
  EXPECT_NE(log.find("unknown_dictionary compressed payload"), std::string::npos) << log;
  EXPECT_NE(log.find("dictionary 12345678"), std::string::npos) << log;

  // Still running, and the intact batch goes through.
  raw.publish(topic, std::string(good.begin(), good.end()));
  EXPECT_TRUE(wait_until([&] { return aggregator.events_accepted() == 1; }, std::chrono::seconds(10)));
  EXPECT_EQ(aggregator.get("/api/v1/stats")["batches_compressed"], 1);
  EXPECT_TRUE(aggregator.process().running());
}
