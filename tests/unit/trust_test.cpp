// The agents' key registry and enrolment (aggregator/src/trust, docs/security.md).
#include "postwatch/enrolment.hpp"
#include "postwatch/wire_codec.hpp"
#include "support/test_support.hpp"
#include "trust/agent_key_registry.hpp"
#include "trust/aggregator_identity.hpp"
#include "trust/enrolment_desk.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>

using namespace postwatch;
using namespace postwatch::aggregator;

namespace {

constexpr std::int64_t kNow = 1'800'000'000'000;
constexpr std::int64_t kHour = 3'600'000;

std::span<const std::uint8_t> bytes(const std::vector<std::uint8_t>& v) { return {v.data(), v.size()}; }

EventBatch batch(std::uint64_t seq) {
  EventBatch b;
  b.agent_id = "agent-1";
  b.post_id = "bamako";
  b.events.push_back({seq, kNow, "terrorism_threat_level", ValueKind::Level, 3, "", "", {}});
  return b;
}

SignatureVerdict check(const AgentKeyRegistry& r, const std::vector<std::uint8_t>& payload) {
  BatchView v;
  EXPECT_EQ(decode_batch(bytes(payload), v), DecodeError::None);
  return r.check(v.post_id, v.agent_id, v.key_id, bytes(payload), v.signature_offset);
}

struct Enrolling {
  SigningKey aggregator = SigningKey::generate();
  AgentKeyRegistry keys;
  EnrolmentDesk desk{random_bytes(32), aggregator, keys};

  // The request `postwatch-agent enrol` sends for `token_text`.
  std::vector<std::uint8_t> request(const std::string& token_text, const SigningKey& agent_key,
                                    const std::string& post = "bamako", const std::string& agent = "agent-1") {
    std::string why;
    auto t = parse_enrolment_token(token_text, why);
    EXPECT_TRUE(t) << why;
    EnrolRequest r;
    r.agent_id = agent;
    r.post_id = post;
    r.token_id = t->id;
    r.public_key = agent_key.public_key();
    r.proof = enrolment_proof(t->secret, post, agent, agent_key.public_key());
    r.at_ms = kNow;
    return encode_enrol_request(r, agent_key);
  }
  EnrolmentDesk::Outcome redeem(const std::vector<std::uint8_t>& payload, std::int64_t now = kNow) {
    EnrolRequest r;
    EXPECT_EQ(decode_enrol_request(bytes(payload), r), DecodeError::None);
    return desk.redeem(r, bytes(payload), now);
  }
};

}  // namespace

TEST(AgentKeyRegistry, AnAgentWithoutAKeyMaySendUnsignedUntilItEnrols) {
  AgentKeyRegistry keys;
  EXPECT_EQ(check(keys, encode_batch(batch(1))), SignatureVerdict::Unsigned);
  auto k = SigningKey::generate();
  EXPECT_EQ(check(keys, encode_batch(batch(1), &k)), SignatureVerdict::UnknownKey);
  keys.add({"bamako", "agent-1", k.key_id(), k.public_key(), kNow, 0, "t"});
  EXPECT_EQ(check(keys, encode_batch(batch(2), &k)), SignatureVerdict::Signed);
  EXPECT_EQ(check(keys, encode_batch(batch(3))), SignatureVerdict::RefusedUnsigned);
  auto other = SigningKey::generate();
  EXPECT_EQ(check(keys, encode_batch(batch(4), &other)), SignatureVerdict::UnknownKey);
  EXPECT_EQ(keys.enrolled_agents(), 1u);
}

TEST(AgentKeyRegistry, RequiredSignaturesRefuseUnsignedFromEveryAgent) {
  AgentKeyRegistry keys(true);
  EXPECT_EQ(check(keys, encode_batch(batch(1))), SignatureVerdict::RefusedUnsigned);
}

TEST(AgentKeyRegistry, AnAlteredBatchFailsAndARevokedKeyIsRefused) {
  AgentKeyRegistry keys;
  auto k = SigningKey::generate();
  keys.add({"bamako", "agent-1", k.key_id(), k.public_key(), kNow, 0, "t"});
  auto payload = encode_batch(batch(7), &k);
  BatchView v;
  ASSERT_EQ(decode_batch(bytes(payload), v), DecodeError::None);
  auto altered = payload;
  altered[v.signature_offset - 20] ^= 0x40;  // inside the body, before the signature
  EXPECT_EQ(keys.check("bamako", "agent-1", k.key_id(), bytes(altered), v.signature_offset),
            SignatureVerdict::BadSignature);
  // Another agent's messages do not verify with this one's key.
  EXPECT_EQ(keys.check("bamako", "agent-2", k.key_id(), bytes(payload), v.signature_offset),
            SignatureVerdict::UnknownKey);
  ASSERT_NE(keys.revoke("bamako", "agent-1", kNow + 1), nullptr);
  EXPECT_EQ(check(keys, payload), SignatureVerdict::RevokedKey);
  // Revoked, the agent is no longer enrolled: unsigned is accepted again until it enrols anew.
  EXPECT_EQ(check(keys, encode_batch(batch(8))), SignatureVerdict::Unsigned);
  EXPECT_EQ(keys.revoke("bamako", "agent-1", kNow + 2), nullptr);
}

TEST(AgentKeyRegistry, KeysRoundTripThroughJson) {
  auto k = SigningKey::generate();
  AgentKey a{"bamako", "agent-1", k.key_id(), k.public_key(), kNow, kNow + 5, "tok"};
  AgentKey b;
  ASSERT_TRUE(from_json(to_json(a), b));
  EXPECT_EQ(b.key, a.key);
  EXPECT_EQ(b.key_id, a.key_id);
  EXPECT_EQ(b.revoked_at_ms, a.revoked_at_ms);
  EXPECT_FALSE(from_json(nlohmann::json{{"post", "x"}}, b));
}

TEST(Enrolment, AValidTokenEnrolsTheAgentOnce) {
  Enrolling e;
  auto issued = e.desk.issue("bamako", "agent-1", kHour, kNow);
  auto agent_key = SigningKey::generate();
  auto out = e.redeem(e.request(issued.text, agent_key), kNow + 1000);
  EXPECT_TRUE(out.reply.accepted) << out.reply.reason;
  EXPECT_TRUE(out.changed);
  EXPECT_EQ(out.reply.agent_key_id, agent_key.key_id());
  ASSERT_NE(e.keys.in_force("bamako", "agent-1"), nullptr);
  EXPECT_EQ(e.keys.in_force("bamako", "agent-1")->key_id, agent_key.key_id());
  // The same request again (its answer was lost): the same answer, nothing changes.
  auto again = e.redeem(e.request(issued.text, agent_key), kNow + 2000);
  EXPECT_TRUE(again.reply.accepted);
  EXPECT_FALSE(again.changed);
  // The token with another key: refused, the first key stays.
  auto thief = SigningKey::generate();
  auto reused = e.redeem(e.request(issued.text, thief), kNow + 3000);
  EXPECT_FALSE(reused.reply.accepted);
  EXPECT_NE(reused.reply.reason.find("used already"), std::string::npos) << reused.reply.reason;
  EXPECT_EQ(e.keys.in_force("bamako", "agent-1")->key_id, agent_key.key_id());
}

TEST(Enrolment, AnExpiredTokenIsRefused) {
  Enrolling e;
  auto issued = e.desk.issue("bamako", "agent-1", kHour, kNow);
  auto out = e.redeem(e.request(issued.text, SigningKey::generate()), kNow + kHour + 1);
  EXPECT_FALSE(out.reply.accepted);
  EXPECT_NE(out.reply.reason.find("expired"), std::string::npos) << out.reply.reason;
  EXPECT_EQ(e.keys.in_force("bamako", "agent-1"), nullptr);
}

TEST(Enrolment, ATokenWorksOnlyForThePostAndAgentItWasIssuedFor) {
  Enrolling e;
  auto issued = e.desk.issue("bamako", "agent-1", kHour, kNow);
  auto out = e.redeem(e.request(issued.text, SigningKey::generate(), "bamako", "agent-2"));
  EXPECT_FALSE(out.reply.accepted);
  EXPECT_NE(out.reply.reason.find("issued for bamako/agent-1"), std::string::npos) << out.reply.reason;
}

TEST(Enrolment, ASecondEnrolmentIsRefusedUntilTheOldKeyIsRevoked) {
  Enrolling e;
  auto first = SigningKey::generate(), second = SigningKey::generate();
  ASSERT_TRUE(e.redeem(e.request(e.desk.issue("bamako", "agent-1", kHour, kNow).text, first)).reply.accepted);
  auto token2 = e.desk.issue("bamako", "agent-1", kHour, kNow).text;
  auto refused = e.redeem(e.request(token2, second));
  EXPECT_FALSE(refused.reply.accepted);
  EXPECT_NE(refused.reply.reason.find("revoke"), std::string::npos) << refused.reply.reason;
  ASSERT_NE(e.keys.revoke("bamako", "agent-1", kNow + 10), nullptr);
  auto accepted = e.redeem(e.request(token2, second), kNow + 20);
  EXPECT_TRUE(accepted.reply.accepted) << accepted.reply.reason;
  EXPECT_EQ(e.keys.in_force("bamako", "agent-1")->key_id, second.key_id());
}

// A broker that swaps the agent's key for its own (and signs with it) cannot make the proof.
TEST(Enrolment, AKeySwappedOnTheWayBreaksTheProof) {
  Enrolling e;
  auto issued = e.desk.issue("bamako", "agent-1", kHour, kNow);
  auto agent_key = SigningKey::generate(), broker_key = SigningKey::generate();
  EnrolRequest r;
  ASSERT_EQ(decode_enrol_request(bytes(e.request(issued.text, agent_key)), r), DecodeError::None);
  r.public_key = broker_key.public_key();  // keeps the agent's proof
  auto swapped = encode_enrol_request(r, broker_key);
  auto out = e.redeem(swapped);
  EXPECT_FALSE(out.reply.accepted);
  EXPECT_NE(out.reply.reason.find("proof"), std::string::npos) << out.reply.reason;
  // And a request signed by another key than the one it carries is refused before the token.
  r.public_key = agent_key.public_key();
  auto unsigned_by_it = encode_enrol_request(r, broker_key);
  EXPECT_NE(e.redeem(unsigned_by_it).reply.reason.find("not signed by the key"), std::string::npos);
  EXPECT_EQ(e.keys.in_force("bamako", "agent-1"), nullptr);
}

TEST(Enrolment, AnUnknownOrDamagedTokenIsRefusedWithAReason) {
  Enrolling e;
  Enrolling other;  // another aggregator's token
  auto foreign = other.desk.issue("bamako", "agent-1", kHour, kNow);
  auto out = e.redeem(e.request(foreign.text, SigningKey::generate()));
  EXPECT_FALSE(out.reply.accepted);
  EXPECT_NE(out.reply.reason.find("unknown enrolment token"), std::string::npos) << out.reply.reason;
  std::string why;
  EXPECT_FALSE(parse_enrolment_token("hello", why));
  EXPECT_NE(why.find("pwt1."), std::string::npos);
  auto cut = foreign.text.substr(0, foreign.text.size() - 3);
  EXPECT_FALSE(parse_enrolment_token(cut, why));
  EXPECT_NE(why.find("damaged"), std::string::npos);
  EXPECT_TRUE(parse_enrolment_token(foreign.text + "\n", why));
}

TEST(Enrolment, TheTokenCarriesTheAggregatorsKeyAndTheReplyIsSignedWithIt) {
  Enrolling e;
  auto issued = e.desk.issue("bamako", "agent-1", kHour, kNow);
  std::string why;
  auto t = parse_enrolment_token(issued.text, why);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->aggregator_key, e.aggregator.public_key());
  auto out = e.redeem(e.request(issued.text, SigningKey::generate()));
  auto reply = encode_enrol_reply(out.reply, e.aggregator);
  EnrolReply back;
  ASSERT_EQ(decode_enrol_reply(bytes(reply), back), DecodeError::None);
  EXPECT_TRUE(back.accepted);
  EXPECT_TRUE(verify_payload(bytes(reply), back.signature_offset, t->aggregator_key));
  IssuedToken kept;
  ASSERT_TRUE(from_json(to_json(*out.token), kept));
  EXPECT_EQ(kept.used_by_key, out.reply.agent_key_id);
}

TEST(AggregatorIdentity, KeysAreMadeOnceOwnerOnlyAndKeptAcrossStarts) {
  test::TempDir dir;
  auto first = AggregatorIdentity::load_or_create(dir.path() / "keys");
  EXPECT_EQ(first.created.size(), 2u);
  struct stat st {};
  ASSERT_EQ(::stat((dir.path() / "keys" / "enrolment.secret").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto second = AggregatorIdentity::load_or_create(dir.path() / "keys");
  EXPECT_TRUE(second.created.empty());
  EXPECT_EQ(second.key.public_key(), first.key.public_key());
  EXPECT_EQ(second.enrolment_secret, first.enrolment_secret);
}
