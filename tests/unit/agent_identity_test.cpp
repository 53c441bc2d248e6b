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
  IdentityConfig config{dir.path() / "agent.key", dir.path() / "aggregator.pub", {}};
  std::shared_ptr<spdlog::logger> log =
      std::make_shared<spdlog::logger>("t", std::make_shared<spdlog::sinks::null_sink_mt>());

  // What enrol leaves on the board: the agent's key and the aggregator keys it trusts.
  void enrol(const SigningKey& agent, const std::vector<PublicKey>& aggregator_keys) {
    agent.save(config.key_file);
    write_public_keys(config.aggregator_key_file, aggregator_keys);
  }
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
  f.enrol(agent_key, {aggregator.public_key()});
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
  f.enrol(first, {aggregator.public_key()});
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
  f.enrol(key, {aggregator.public_key()});
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

namespace {
// A confirmation as the aggregator sends it during its own key rotation.
DeliveryConfirm notice_from(const SigningKey& signer, const SigningKey* next, std::vector<std::string> retired,
                            std::vector<std::uint8_t>& payload) {
  DeliveryConfirm c;
  c.agent_id = "agent-1";
  c.post_id = "bamako";
  c.through_seq = 5;
  if (next) c.next_key.assign(next->public_key().begin(), next->public_key().end());
  c.retired_key_ids = std::move(retired);
  payload = encode_delivery_confirm(c, &signer);
  DeliveryConfirm back;
  EXPECT_EQ(decode_delivery_confirm({payload.data(), payload.size()}, back), DecodeError::None);
  return back;
}
}  // namespace

// The aggregator's rotation: a verified confirmation names the next key (trusted from then on,
// written to the file, reported in heartbeats), then one signed by the new key retires the old
// (no longer obeyed). The file survives a restart of the agent.
TEST(AgentIdentity, TheAggregatorsNextKeyIsTrustedAndItsRetiredKeyDropped) {
  Files f;
  auto agent_key = SigningKey::generate(), old_key = SigningKey::generate(), new_key = SigningKey::generate();
  f.enrol(agent_key, {old_key.public_key()});
  AgentIdentity id(f.config, f.log);
  id.load();
  EXPECT_EQ(id.trusted_key_ids(), std::vector<std::string>{old_key.key_id()});
  EXPECT_NE(problem(id, confirm(&new_key)), "");

  std::vector<std::uint8_t> payload;
  auto c = notice_from(old_key, &new_key, {}, payload);
  ASSERT_EQ(id.confirm_problem(c, {payload.data(), payload.size()}), "");
  id.note_key_notice(c);
  EXPECT_NE(problem(id, confirm(&new_key)), "") << "nothing changes before the publisher thread applies it";
  ASSERT_TRUE(id.apply_key_notice());
  EXPECT_EQ(problem(id, confirm(&new_key)), "");
  EXPECT_EQ(problem(id, confirm(&old_key)), "");
  EXPECT_EQ(id.trusted_key_ids(), (std::vector<std::string>{old_key.key_id(), new_key.key_id()}));
  EXPECT_EQ(read_public_keys(f.config.aggregator_key_file).size(), 2u);
  EXPECT_FALSE(id.reload_if_changed()) << "its own write is not read back as a change";
  // The same notice again (every confirmation carries it) changes nothing.
  id.note_key_notice(c);
  EXPECT_FALSE(id.apply_key_notice());

  // After the switch: signed by the new key, retiring the old one.
  c = notice_from(new_key, nullptr, {old_key.key_id()}, payload);
  ASSERT_EQ(id.confirm_problem(c, {payload.data(), payload.size()}), "");
  id.note_key_notice(c);
  ASSERT_TRUE(id.apply_key_notice());
  EXPECT_NE(problem(id, confirm(&old_key)).find("not the aggregator's"), std::string::npos);
  EXPECT_EQ(problem(id, confirm(&new_key)), "");
  EXPECT_EQ(id.trusted_key_ids(), std::vector<std::string>{new_key.key_id()});

  AgentIdentity restarted(f.config, f.log);
  restarted.load();
  EXPECT_EQ(restarted.trusted_key_ids(), std::vector<std::string>{new_key.key_id()});
}

// A notice never retires the key that signed it (so no notice can leave the agent trusting
// nothing), and an agent that is not enrolled takes no key from an unsigned confirmation.
TEST(AgentIdentity, ANoticeNeverRetiresItsOwnSignerAndAnUnenrolledAgentTakesNone) {
  Files f;
  auto agent_key = SigningKey::generate(), aggregator = SigningKey::generate(), other = SigningKey::generate();
  f.enrol(agent_key, {aggregator.public_key()});
  AgentIdentity id(f.config, f.log);
  id.load();
  std::vector<std::uint8_t> payload;
  id.note_key_notice(notice_from(aggregator, nullptr, {aggregator.key_id()}, payload));
  EXPECT_FALSE(id.apply_key_notice());
  EXPECT_EQ(problem(id, confirm(&aggregator)), "");

  Files g;
  AgentIdentity unenrolled(g.config, g.log);
  unenrolled.load();
  DeliveryConfirm c;
  c.agent_id = "agent-1";
  c.post_id = "bamako";
  c.next_key.assign(other.public_key().begin(), other.public_key().end());
  unenrolled.note_key_notice(c);
  EXPECT_FALSE(unenrolled.apply_key_notice());
  EXPECT_FALSE(std::filesystem::exists(g.config.aggregator_key_file));
  EXPECT_TRUE(unenrolled.trusted_key_ids().empty());
}

// A file that cannot be written keeps the keys as they were; the next confirmation brings the
// notice again.
TEST(AgentIdentity, ANoticeThatCannotBeWrittenChangesNothing) {
  Files f;
  auto agent_key = SigningKey::generate(), old_key = SigningKey::generate(), new_key = SigningKey::generate();
  f.enrol(agent_key, {old_key.public_key()});
  AgentIdentity id(f.config, f.log);
  id.load();
  // A directory where the new file is written first: fails for root too.
  auto tmp = f.config.aggregator_key_file;
  tmp += ".tmp";
  std::filesystem::create_directory(tmp);
  std::vector<std::uint8_t> payload;
  id.note_key_notice(notice_from(old_key, &new_key, {}, payload));
  EXPECT_FALSE(id.apply_key_notice());
  EXPECT_EQ(read_public_keys(f.config.aggregator_key_file).size(), 1u);
  std::filesystem::remove(tmp);
  EXPECT_NE(problem(id, confirm(&new_key)), "");
  id.note_key_notice(notice_from(old_key, &new_key, {}, payload));
  EXPECT_TRUE(id.apply_key_notice());
  EXPECT_EQ(problem(id, confirm(&new_key)), "");
}
