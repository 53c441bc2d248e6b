#include "ingest/batch_ingest.hpp"

#include "postwatch/wire_codec.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

using namespace postwatch;
using namespace postwatch::aggregator;

class BatchIngestTest : public ::testing::Test {
 protected:
  IndicatorCatalogue cat = IndicatorCatalogue::load(test::catalogue_path());
  IndicatorState state{cat};
  AgentTable agents{cat};
  BatchIngest ingest{cat, agents, state,
                     std::make_shared<spdlog::logger>("test", std::make_shared<spdlog::sinks::null_sink_mt>())};
  const std::string topic = "postwatch/v1/sub-saharan-africa/bamako/a1/events";

  EventBatch batch(std::vector<std::uint64_t> seqs, double value = 4) {
    EventBatch b{"a1", "bamako", 1, {}};
    for (auto s : seqs)
      b.events.push_back(IndicatorEvent{
          s, 1000 + static_cast<std::int64_t>(s), "terrorism_threat_level", ValueKind::Level, value, "", "", {}});
    return b;
  }
  // What an agent's birth tells ingest: whether it keeps its events until confirmed.
  void birth(const std::string& agent, bool awaits_confirmation) {
    auto& r = agents.get(*cat.post_index("bamako"), agent);
    r.presence.births += 1;
    r.presence.awaits_confirmation = awaits_confirmation;
  }
  const AgentRecord& agent(const std::string& key) { return *agents.find(key); }
  std::size_t feed(const std::string& t, const EventBatch& b) {
    auto bytes = encode_batch(b);
    return ingest.on_message(t, bytes, 5000);
  }
};

TEST_F(BatchIngestTest, AppliesNewEventsAndDropsDuplicates) {
  EXPECT_EQ(feed(topic, batch({1, 2, 3})), 3u);
  EXPECT_EQ(feed(topic, batch({2, 3, 4})), 1u);
  EXPECT_EQ(ingest.counters().events_accepted, 4u);
  EXPECT_EQ(ingest.counters().events_duplicate, 2u);
  auto post = *cat.post_index("bamako");
  auto ind = *cat.indicator_index("terrorism_threat_level");
  EXPECT_TRUE(state.at(post, ind).present);
  EXPECT_EQ(state.at(post, ind).number, 4);
}

TEST_F(BatchIngestTest, RejectsPayloadThatDisagreesWithTopic) {
  std::string who;
  ingest.on_topic_mismatch = [&](std::string_view tp, std::string_view ta, std::string_view cp, std::string_view ca) {
    who = std::string(tp) + "/" + std::string(ta) + " claimed " + std::string(cp) + "/" + std::string(ca);
  };
  auto b = batch({1});
  b.post_id = "kabul";
  EXPECT_EQ(feed(topic, b), 0u);
  EXPECT_EQ(ingest.counters().batches_topic_mismatch, 1u);
  EXPECT_EQ(who, "bamako/a1 claimed kabul/a1");
  EXPECT_EQ(feed("postwatch/v1/europe/bamako/a1/events", batch({1})), 0u);  // wrong region
  EXPECT_EQ(ingest.counters().batches_unknown_post, 1u);
  EXPECT_EQ(feed("postwatch/v1/x/atlantis/a1/events", EventBatch{"a1", "atlantis", 1, {}}), 0u);
  EXPECT_EQ(ingest.counters().batches_unknown_post, 2u);
  EXPECT_EQ(feed("not/a/topic", batch({1})), 0u);
  EXPECT_EQ(ingest.counters().batches_bad_topic, 1u);
  EXPECT_EQ(ingest.counters().events_accepted, 0u);
}

TEST_F(BatchIngestTest, CountsMalformedPayloadsByReason) {
  std::vector<std::uint8_t> garbage(64, 0xAB);
  EXPECT_EQ(ingest.on_message(topic, garbage, 1), 0u);
  auto good = encode_batch(batch({1, 2}));
  good.resize(good.size() / 2);
  EXPECT_EQ(ingest.on_message(topic, good, 1), 0u);
  const auto& c = ingest.counters();
  EXPECT_EQ(c.batches_undecodable[static_cast<std::size_t>(DecodeError::WrongIdentifier)], 1u);
  EXPECT_EQ(c.batches_undecodable[static_cast<std::size_t>(DecodeError::Malformed)], 1u);
  EXPECT_EQ(c.batches_rejected(), 2u);
}

TEST_F(BatchIngestTest, RejectsUnknownIndicatorAndBadValuesPerEvent) {
  auto b = batch({1, 2, 3});
  b.events[0].indicator = "made_up_indicator";
  b.events[1].number = 99;  // outside 1..5
  EXPECT_EQ(feed(topic, b), 1u);
  EXPECT_EQ(ingest.counters().events_unknown_indicator, 1u);
  EXPECT_EQ(ingest.counters().events_bad_value, 1u);
  EXPECT_EQ(ingest.counters().events_accepted, 1u);
}

TEST_F(BatchIngestTest, AMinistryFigureIsAcceptedFromTheMinistryOnly) {
  // A post cannot report the national figures strategy targets follow (a forged defence budget).
  auto b = batch({1, 2});
  b.events[0].indicator = "defence_spending_gdp_percent";
  b.events[0].kind = ValueKind::Gauge;
  b.events[0].number = 1.4;
  EXPECT_EQ(feed(topic, b), 1u);  // the threat level only
  EXPECT_EQ(ingest.counters().events_bad_value, 1u);
  const auto gdp = *cat.indicator_index("defence_spending_gdp_percent");
  EXPECT_FALSE(state.at(*cat.post_index("bamako"), gdp).present);

  EventBatch m{"ministry", "the-hague", 1, {}};
  m.events.push_back(IndicatorEvent{1, 1000, "defence_spending_gdp_percent", ValueKind::Gauge, 1.4, "", "", {}});
  EXPECT_EQ(feed("postwatch/v1/europe/the-hague/ministry/events", m), 1u);
  EXPECT_TRUE(state.at(*cat.post_index("the-hague"), gdp).present);
  EXPECT_EQ(ingest.counters().events_bad_value, 1u);
}

TEST_F(BatchIngestTest, RecordsGapsPerAgent) {
  birth("a1", false);  // it releases on PUBACK, so holes never fill
  feed(topic, batch({1, 2}));
  feed(topic, batch({3 + SeqWindow::kWindow + 10}));  // 3 .. kWindow+12 missing, 11 slide out
  EXPECT_EQ(ingest.counters().events_gaps, 11u);
  ASSERT_EQ(ingest.agents_tracked(), 1u);
  EXPECT_EQ(agent("bamako/a1").events.seqs.gaps(), 11u);
}

TEST_F(BatchIngestTest, AnAgentThatKeepsItsEventsHasItsHolesWaitForTheResend) {
  // No birth yet: assumed to keep them (a late gap costs nothing, an early one an event).
  feed(topic, batch({1, 2}));
  feed(topic, batch({3 + SeqWindow::kWindow + 10}));
  EXPECT_EQ(ingest.counters().events_gaps, 0u);
  EXPECT_TRUE(agent("bamako/a1").keeps_events());
  birth("a1", false);  // a birth says otherwise
  EXPECT_FALSE(agent("bamako/a1").keeps_events());
  feed(topic, batch({3 + SeqWindow::kWindow + 11}));
  EXPECT_EQ(ingest.counters().events_gaps, 12u) << "3 .. 14 given up, now 4096 later seqs passed them";
  // A birth before the first event is remembered for the track made later.
  birth("a2", false);
  feed("postwatch/v1/sub-saharan-africa/bamako/a2/events", [&] {
    auto b = batch({1});
    b.agent_id = "a2";
    return b;
  }());
  EXPECT_FALSE(agent("bamako/a2").keeps_events());
}

TEST_F(BatchIngestTest, GivingUpWhatTheAgentDroppedCountsGaps) {
  feed(topic, batch({1, 2, 6}));
  EXPECT_EQ(ingest.give_up(*agents.find("bamako/a1"), 5), 3u);  // 3, 4, 5
  EXPECT_EQ(ingest.counters().events_gaps, 3u);
  EXPECT_EQ(agent("bamako/a1").events.seqs.settled_through(), 6u);
  EXPECT_EQ(feed(topic, batch({4})), 0u);
  EXPECT_EQ(agents.find("kabul/nobody"), nullptr);
}
