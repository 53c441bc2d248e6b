// AgentTable: one record per agent, found by (post, name) or "post/agent"; change lists.
#include "ingest/agent_table.hpp"

#include "support/test_support.hpp"

#include <gtest/gtest.h>

using namespace postwatch;
using namespace postwatch::aggregator;

namespace {

class AgentTableTest : public ::testing::Test {
 protected:
  IndicatorCatalogue cat = IndicatorCatalogue::load(test::catalogue_path());
  AgentTable table{cat};
  std::uint32_t bamako = *cat.post_index("bamako");
  std::uint32_t kabul = *cat.post_index("kabul");
};

TEST_F(AgentTableTest, OneRecordPerPostAndName) {
  AgentRecord& a = table.get(bamako, "gw-1");
  AgentRecord& b = table.get(kabul, "gw-1");  // same name, another post: another agent
  EXPECT_NE(a.id, b.id);
  EXPECT_EQ(&table.get(bamako, "gw-1"), &a);
  EXPECT_EQ(table.size(), 2u);
  EXPECT_EQ(table.find("bamako/gw-1"), &a);
  EXPECT_EQ(table.find("kabul/gw-1"), &b);
  EXPECT_EQ(table.find("bamako/gw-2"), nullptr);
  EXPECT_EQ(table.find("nowhere/gw-1"), nullptr);
  EXPECT_EQ(table.find("bamako"), nullptr);
  EXPECT_EQ(table.key(a), "bamako/gw-1");
  EXPECT_EQ(a.confirm.topic, "postwatch/v1/sub-saharan-africa/bamako/gw-1/confirm");
  EXPECT_EQ(table.at_post(bamako), std::vector<AgentId>{a.id});
}

TEST_F(AgentTableTest, RecordsStayPutAsTheTableGrows) {
  AgentRecord* first = &table.get(bamako, "gw-0");
  for (int i = 1; i < 10'000; ++i)
    table.get(static_cast<std::uint32_t>(i % cat.posts().size()), "gw-" + std::to_string(i));
  EXPECT_EQ(&table.get(bamako, "gw-0"), first);
  EXPECT_EQ(table.find(bamako, "gw-0")->name, "gw-0");  // the index's key still points at a live name
  EXPECT_EQ(table.size(), 10'000u);
}

TEST_F(AgentTableTest, ChangeListsHoldEachAgentOnceUntilTaken) {
  AgentRecord& a = table.get(bamako, "gw-1");
  AgentRecord& b = table.get(kabul, "gw-1");
  table.mark_moved(a);
  table.mark_moved(a);
  table.mark_moved(b);
  table.mark_heard(b);
  EXPECT_EQ(table.take_moved(), (std::vector<AgentId>{a.id, b.id}));
  EXPECT_TRUE(table.take_moved().empty());
  table.mark_moved(a);  // taken: may be listed again
  EXPECT_EQ(table.take_moved(), std::vector<AgentId>{a.id});
  EXPECT_EQ(table.take_heard(), std::vector<AgentId>{b.id});
}

TEST_F(AgentTableTest, AnAgentKeepsItsEventsUntilABirthSaysOtherwise) {
  AgentRecord& a = table.get(bamako, "gw-1");
  EXPECT_TRUE(a.keeps_events());
  a.presence.births = 1;
  a.presence.awaits_confirmation = false;
  EXPECT_FALSE(a.keeps_events());
  a.presence.awaits_confirmation = true;
  EXPECT_TRUE(a.keeps_events());
}

}  // namespace
