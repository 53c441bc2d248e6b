// The running agent's identity (agent/src/agent_identity.cpp, docs/security.md): what it signs
// with and whose confirmations it obeys, taken up again when enrol or rotate-key change the files.
#include "postwatch/agent/agent_identity.hpp"
#include "postwatch/enrolment.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <fstream>

using namespace postwatch;
using namespace postwatch::agent;

namespace {

struct Files {
  test::TempDir dir;
  IdentityConfig config{dir.path() / "agent.key", dir.path() / "aggregator.pub"};
  std::shared_ptr<spdlog::logger> log =
      std::make_shared<spdlog::logger>("t", std::make_shared<spdlog::sinks::null_sink_mt>());

  // What rotate-key does: the new key beside the old one, then renamed over it.
  void replace_key(const SigningKey& k) {
    auto next = config.key_file;
    next += ".next";
    k.save(next);
    std::filesystem::rename(next, config.key_file);
  }
};

std::vector<std::uint8_t> confirm(const SigningKey* signer) {
  DeliveryConfirm c;
  c.agent_id = "agent-1";
  c.post_id = "bamako";
  c.through_seq = 5;
  return encode_delivery_confirm(c, signer);
}

std::string problem(const AgentIdentity& id, const std::vector<std::uint8_t>& payload) {
  DeliveryConfirm c;
  EXPECT_EQ(decode_delivery_confirm({payload.data(), payload.size()}, c), DecodeError::None);
  return id.confirm_problem(c, {payload.data(), payload.size()});
}

}  // namespace

TEST(AgentIdentity, NotEnrolledSignsNothingAndChecksNothing) {
  Files f;
  AgentIdentity id(f.config, f.log);
  id.load();
  EXPECT_EQ(id.signer(), nullptr);
  EXPECT_EQ(problem(id, confirm(nullptr)), "");
}

TEST(AgentIdentity, EnrolledObeysOnlyTheAggregatorsSignature) {
  Files f;
  auto agent_key = SigningKey::generate(), aggregator = SigningKey::generate(), forger = SigningKey::generate();
  agent_key.save(f.config.key_file);
  write_public_keys(f.config.aggregator_key_file, {aggregator.public_key()});
  AgentIdentity id(f.config, f.log);
  id.load();
  ASSERT_NE(id.signer(), nullptr);
  EXPECT_EQ(id.signer()->key_id(), agent_key.key_id());
  EXPECT_EQ(problem(id, confirm(&aggregator)), "");
  EXPECT_NE(problem(id, confirm(nullptr)).find("unsigned"), std::string::npos);
  EXPECT_NE(problem(id, confirm(&forger)).find("not the aggregator's"), std::string::npos);
}

// rotate-key moves a new key over the old one while the agent runs: the next check takes it up
// (and says the key changed, so the agent renews its last will); a second aggregator key added
// to the file is trusted at once, without a change of signing key.
TEST(AgentIdentity, ANewKeyOrANewAggregatorKeyOnDiskIsTakenUp) {
  Files f;
  auto first = SigningKey::generate(), second = SigningKey::generate();
  auto aggregator = SigningKey::generate(), aggregator_next = SigningKey::generate();
  first.save(f.config.key_file);
  write_public_keys(f.config.aggregator_key_file, {aggregator.public_key()});
  AgentIdentity id(f.config, f.log);
  id.load();
  EXPECT_FALSE(id.reload_if_changed());
  f.replace_key(second);
  EXPECT_TRUE(id.reload_if_changed());
  EXPECT_EQ(id.signer()->key_id(), second.key_id());
  EXPECT_FALSE(id.reload_if_changed());

  EXPECT_NE(problem(id, confirm(&aggregator_next)), "");
  write_public_keys(f.config.aggregator_key_file, {aggregator.public_key(), aggregator_next.public_key()});
  EXPECT_FALSE(id.reload_if_changed());  // the signing key is the same
  EXPECT_EQ(problem(id, confirm(&aggregator_next)), "");
  EXPECT_EQ(problem(id, confirm(&aggregator)), "");
}

// A damaged file under a running agent keeps what it holds (and says so); at start it is a
// configuration error, as before.
TEST(AgentIdentity, ADamagedFileKeepsTheKeyInUseAndFailsAStart) {
  Files f;
  auto key = SigningKey::generate(), aggregator = SigningKey::generate();
  key.save(f.config.key_file);
  write_public_keys(f.config.aggregator_key_file, {aggregator.public_key()});
  AgentIdentity id(f.config, f.log);
  id.load();
  std::ofstream(f.config.aggregator_key_file, std::ios::trunc) << "not a key\n";
  EXPECT_FALSE(id.reload_if_changed());
  ASSERT_NE(id.signer(), nullptr);
  EXPECT_EQ(id.signer()->key_id(), key.key_id());
  EXPECT_EQ(problem(id, confirm(&aggregator)), "");
  AgentIdentity fresh(f.config, f.log);
  EXPECT_THROW(fresh.load(), ConfigError);
}

// `postwatch-agent enrol` run beside a running agent: the key file first, the aggregator's key
// after the answer. The agent signs from when both are there.
TEST(AgentIdentity, AnEnrolmentFinishedWhileRunningIsTakenUp) {
  Files f;
  AgentIdentity id(f.config, f.log);
  id.load();
  auto key = SigningKey::generate(), aggregator = SigningKey::generate();
  key.save(f.config.key_file);
  EXPECT_FALSE(id.reload_if_changed());
  EXPECT_EQ(id.signer(), nullptr);
  write_public_keys(f.config.aggregator_key_file, {aggregator.public_key()});
  EXPECT_TRUE(id.reload_if_changed());
  ASSERT_NE(id.signer(), nullptr);
  EXPECT_EQ(id.signer()->key_id(), key.key_id());
}
