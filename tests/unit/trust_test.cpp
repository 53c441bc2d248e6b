// The agents' key registry and enrolment (aggregator/src/trust, docs/security.md).
#include "postwatch/enrolment.hpp"
#include "postwatch/wire/postwatch_enrolment_generated.h"
#include "postwatch/wire_codec.hpp"
#include "support/test_support.hpp"
#include "trust/agent_key_registry.hpp"
#include "trust/aggregator_identity.hpp"
#include "trust/enrolment_desk.hpp"
#include "trust/signature_precheck.hpp"
#include "trust/sodium_ed25519.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <random>
#include <set>
#include <thread>

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
  return r.check(v.post_id, v.agent_id, v.key_id, bytes(payload), v.signature_offset, kNow);
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
    return enrolment_request(*t, post, agent, agent_key, kNow);
  }
  // The request `postwatch-agent rotate-key` sends: `next` endorsed by `current`.
  static std::vector<std::uint8_t> rotation(const SigningKey& current, const SigningKey& next,
                                            const std::string& post = "bamako", const std::string& agent = "agent-1") {
    EnrolRequest r;
    r.agent_id = agent;
    r.post_id = post;
    r.public_key = next.public_key();
    r.endorsed_by = current.key_id();
    r.endorsement = endorse_rotation(current, post, agent, next.public_key());
    r.at_ms = kNow;
    return encode_enrol_request(r, next);
  }
  EnrolmentDesk::Outcome redeem(const std::vector<std::uint8_t>& payload, std::int64_t now = kNow) {
    EnrolRequest r;
    EXPECT_EQ(decode_enrol_request(bytes(payload), r), DecodeError::None);
    return desk.redeem(r, bytes(payload), now, kHour);
  }
  // `key` enrolled with a token.
  void enrol(const SigningKey& key) {
    auto out = redeem(request(desk.issue("bamako", "agent-1", kHour, kNow).text, key));
    ASSERT_TRUE(out.reply.accepted) << out.reply.reason;
  }
};

}  // namespace

// The aggregator verifies with libsodium what agents sign with OpenSSL: both libraries must
// say the same of every honest signature and of every altered one.
TEST(Ed25519Check, LibsodiumAndOpenSslAgreeOnSignedAndAlteredMessages) {
  std::mt19937 rng(17);
  for (int round = 0; round < 200; ++round) {
    auto key = SigningKey::generate();
    std::vector<std::uint8_t> msg(rng() % 3000);
    for (auto& b : msg) b = static_cast<std::uint8_t>(rng());
    auto sig = key.sign(msg);
    VerifyKey openssl(key.public_key()), sodium(key.public_key(), &sodium_ed25519_verify);
    ASSERT_TRUE(openssl.verify(msg, sig)) << round;
    ASSERT_TRUE(sodium.verify(msg, sig)) << round;

    auto bad_sig = sig;
    bad_sig[rng() % bad_sig.size()] ^= static_cast<std::uint8_t>(1u << (rng() % 8));
    EXPECT_FALSE(openssl.verify(msg, bad_sig)) << round;
    EXPECT_FALSE(sodium.verify(msg, bad_sig)) << round;
    if (!msg.empty()) {
      auto bad_msg = msg;
      bad_msg[rng() % bad_msg.size()] ^= 0x01;
      EXPECT_FALSE(openssl.verify(bad_msg, sig)) << round;
      EXPECT_FALSE(sodium.verify(bad_msg, sig)) << round;
    }
    auto other = SigningKey::generate();
    EXPECT_FALSE(VerifyKey(other.public_key(), &sodium_ed25519_verify).verify(msg, sig)) << round;
    EXPECT_FALSE(sodium.verify(msg, std::span<const std::uint8_t>(sig.data(), 63))) << round;
  }
}

// A second signature for the same message, S + L (the group order), is the classic
// malleability: both libraries refuse a non-canonical S.
TEST(Ed25519Check, ANonCanonicalSignatureIsRefusedByBoth) {
  static constexpr std::uint8_t kOrder[32] = {0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7,
                                              0xa2, 0xde, 0xf9, 0xde, 0x14, 0,    0,    0,    0,    0,    0,
                                              0,    0,    0,    0,    0,    0,    0,    0,    0,    0x10};
  auto key = SigningKey::generate();
  const std::vector<std::uint8_t> msg{'p', 'o', 's', 't'};
  auto sig = key.sign(msg);
  unsigned carry = 0;
  for (int i = 0; i < 32; ++i) {  // S is little-endian in the signature's second half
    unsigned v = sig[32 + i] + kOrder[i] + carry;
    sig[32 + i] = static_cast<std::uint8_t>(v);
    carry = v >> 8;
  }
  ASSERT_EQ(carry, 0u);  // S < L < 2^253: S + L fits in 32 bytes
  EXPECT_FALSE(VerifyKey(key.public_key()).verify(msg, sig));
  EXPECT_FALSE(VerifyKey(key.public_key(), &sodium_ed25519_verify).verify(msg, sig));
}

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
  EXPECT_EQ(keys.check("bamako", "agent-1", k.key_id(), bytes(altered), v.signature_offset, kNow),
            SignatureVerdict::BadSignature);
  // Another agent's messages do not verify with this one's key.
  EXPECT_EQ(keys.check("bamako", "agent-2", k.key_id(), bytes(payload), v.signature_offset, kNow),
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

// A rotated-out key signs for its grace period (what was in flight, or spooled and signed, when
// the agent moved on), then is refused as revoked; the new key is the one in force throughout.
TEST(AgentKeyRegistry, ARotatedKeyStaysValidForItsGraceThenIsRefused) {
  AgentKeyRegistry keys;
  auto old_key = SigningKey::generate(), new_key = SigningKey::generate();
  keys.add({"bamako", "agent-1", old_key.key_id(), old_key.public_key(), kNow, 0, "t"});
  AgentKey next{"bamako", "agent-1", new_key.key_id(), new_key.public_key(), kNow, 0, ""};
  next.rotated_from = old_key.key_id();
  ASSERT_TRUE(keys.rotate(next, kNow + kHour));
  EXPECT_EQ(keys.in_force("bamako", "agent-1")->key_id, new_key.key_id());
  EXPECT_EQ(keys.enrolled_agents(), 1u);
  auto old_signed = encode_batch(batch(1), &old_key), new_signed = encode_batch(batch(2), &new_key);
  BatchView o, n;
  ASSERT_EQ(decode_batch(bytes(old_signed), o), DecodeError::None);
  ASSERT_EQ(decode_batch(bytes(new_signed), n), DecodeError::None);
  auto at = [&](const BatchView& v, const std::vector<std::uint8_t>& p, std::int64_t now) {
    return keys.check("bamako", "agent-1", v.key_id, bytes(p), v.signature_offset, now);
  };
  EXPECT_EQ(at(o, old_signed, kNow + kHour - 1), SignatureVerdict::Signed);
  EXPECT_EQ(at(o, old_signed, kNow + kHour), SignatureVerdict::RevokedKey);
  EXPECT_EQ(at(n, new_signed, kNow + 10 * kHour), SignatureVerdict::Signed);
  // Kept across a restart: both rows, with the grace and the endorsement.
  AgentKey back;
  ASSERT_TRUE(from_json(to_json(*keys.find("bamako", "agent-1", old_key.key_id())), back));
  EXPECT_EQ(back.retires_at_ms, kNow + kHour);
  ASSERT_TRUE(from_json(to_json(*keys.in_force("bamako", "agent-1")), back));
  EXPECT_EQ(back.rotated_from, old_key.key_id());
  // Revoking the agent revokes both: the new key, and the old one still in its grace.
  ASSERT_NE(keys.revoke("bamako", "agent-1", kNow + 5), nullptr);
  EXPECT_EQ(at(o, old_signed, kNow + 6), SignatureVerdict::RevokedKey);
  EXPECT_EQ(at(n, new_signed, kNow + 6), SignatureVerdict::RevokedKey);
  EXPECT_EQ(keys.enrolled_agents(), 0u);
  // Nothing in force: nothing to rotate from.
  EXPECT_FALSE(keys.rotate({"bamako", "agent-1", "x", new_key.public_key(), kNow, 0, ""}, kNow + kHour));
}

TEST(Rotation, TheKeyInForceEndorsesItsSuccessorOnce) {
  Enrolling e;
  auto first = SigningKey::generate(), second = SigningKey::generate();
  e.enrol(first);
  auto out = e.redeem(Enrolling::rotation(first, second), kNow + 1000);
  ASSERT_TRUE(out.reply.accepted) << out.reply.reason;
  EXPECT_TRUE(out.changed);
  EXPECT_EQ(out.reply.agent_key_id, second.key_id());
  EXPECT_TRUE(out.reply.token_id.empty());
  ASSERT_NE(out.retired, nullptr);
  EXPECT_EQ(out.retired->key_id, first.key_id());
  EXPECT_EQ(out.retired->retires_at_ms, kNow + 1000 + kHour);
  EXPECT_EQ(out.key->rotated_from, first.key_id());
  // The same request again (its answer was lost, or rotate-key finishes an interrupted run).
  auto again = e.redeem(Enrolling::rotation(first, second), kNow + 2000);
  EXPECT_TRUE(again.reply.accepted) << again.reply.reason;
  EXPECT_FALSE(again.changed);
  // The next rotation must come from the new key: the old one no longer endorses anything.
  auto third = SigningKey::generate();
  auto stale = e.redeem(Enrolling::rotation(first, third), kNow + 3000);
  EXPECT_FALSE(stale.reply.accepted);
  EXPECT_NE(stale.reply.reason.find("key in force is " + second.key_id()), std::string::npos) << stale.reply.reason;
  // Nor can the agent go back to a key it had.
  auto back = e.redeem(Enrolling::rotation(second, first), kNow + 4000);
  EXPECT_FALSE(back.reply.accepted);
  EXPECT_NE(back.reply.reason.find("was this agent's before"), std::string::npos) << back.reply.reason;
  EXPECT_EQ(e.keys.in_force("bamako", "agent-1")->key_id, second.key_id());
}

// Whoever does not hold the key in force cannot name a successor: a broker that swaps the new
// key breaks the endorsement, and another agent's key endorses nothing here.
TEST(Rotation, AForgedOrSwappedEndorsementIsRefused) {
  Enrolling e;
  auto current = SigningKey::generate(), next = SigningKey::generate(), thief = SigningKey::generate();
  e.enrol(current);
  EnrolRequest r;
  ASSERT_EQ(decode_enrol_request(bytes(Enrolling::rotation(current, next)), r), DecodeError::None);
  ASSERT_TRUE(r.rotation());
  r.public_key = thief.public_key();  // keeps the endorsement of `next`
  auto swapped = e.redeem(encode_enrol_request(r, thief));
  EXPECT_FALSE(swapped.reply.accepted);
  EXPECT_NE(swapped.reply.reason.find("endorsement does not verify"), std::string::npos) << swapped.reply.reason;
  // Endorsed by a key that claims the current key's id but is not it.
  r.public_key = next.public_key();
  r.endorsement = endorse_rotation(thief, "bamako", "agent-1", next.public_key());
  EXPECT_FALSE(e.redeem(encode_enrol_request(r, next)).reply.accepted);
  // For another agent: that agent has no key in force.
  auto elsewhere = e.redeem(Enrolling::rotation(current, next, "bamako", "agent-2"));
  EXPECT_FALSE(elsewhere.reply.accepted);
  EXPECT_NE(elsewhere.reply.reason.find("no key in force"), std::string::npos) << elsewhere.reply.reason;
  EXPECT_EQ(e.keys.in_force("bamako", "agent-1")->key_id, current.key_id());
}

// A rotation carries no token and an enrolment no endorsement: a request mixing them (made by
// hand: encode writes one or the other) is not read at all.
TEST(Rotation, ARequestWithBothTokenAndEndorsementIsUndecodable) {
  auto current = SigningKey::generate(), next = SigningKey::generate();
  EnrolRequest r;
  ASSERT_EQ(decode_enrol_request(bytes(Enrolling::rotation(current, next)), r), DecodeError::None);
  EXPECT_EQ(r.endorsed_by, current.key_id());
  EXPECT_TRUE(rotation_endorsed(current.public_key(), "bamako", "agent-1", next.public_key(), *r.endorsement));
  EXPECT_FALSE(rotation_endorsed(current.public_key(), "bamako", "agent-2", next.public_key(), *r.endorsement));

  namespace fbw = postwatch::wire::v1;
  flatbuffers::FlatBufferBuilder fbb;
  std::array<std::uint8_t, 32> proof{};
  Signature zeros{};
  auto root = fbw::CreateEnrolRequest(
      fbb, 1, fbb.CreateString("agent-1"), fbb.CreateString("bamako"), fbb.CreateString("0123456789abcdef"),
      fbb.CreateVector(next.public_key().data(), 32), fbb.CreateVector(proof.data(), 32), kNow,
      fbb.CreateString(next.key_id()), fbb.CreateVector(zeros.data(), zeros.size()), fbb.CreateString(current.key_id()),
      fbb.CreateVector(r.endorsement->data(), r.endorsement->size()));
  fbw::FinishEnrolRequestBuffer(fbb, root);
  std::vector<std::uint8_t> mixed(fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize());
  EnrolRequest back;
  EXPECT_EQ(decode_enrol_request(bytes(mixed), back), DecodeError::FieldTooLong);
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

// The aggregator's own rotation: a prepared key survives a restart, a switch puts it in force
// and retires the old key (also across a restart), and a second switch needs a new next key.
TEST(AggregatorIdentity, ANextKeyIsPreparedOnceSwitchedToAndTheOldOneRetired) {
  test::TempDir dir;
  const auto keys = dir.path() / "keys";
  auto id = AggregatorIdentity::load_or_create(keys);
  const auto first = id.key.public_key();
  EXPECT_FALSE(id.next);
  EXPECT_THROW(id.switch_to_next(), std::logic_error);
  const auto next = id.prepare_next().public_key();
  EXPECT_EQ(id.prepare_next().public_key(), next) << "prepared once";
  struct stat st {};
  ASSERT_EQ(::stat((keys / "aggregator.next.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto restarted = AggregatorIdentity::load_or_create(keys);
  ASSERT_TRUE(restarted.next);
  EXPECT_EQ(restarted.next->public_key(), next);
  EXPECT_EQ(restarted.key.public_key(), first);

  const SigningKey* signer = &id.key;  // the confirmer and the desk sign through this reference
  id.switch_to_next();
  EXPECT_EQ(signer->public_key(), next);
  EXPECT_FALSE(id.next);
  EXPECT_EQ(id.retired_key_ids(), std::vector<std::string>{key_id_of(first)});
  EXPECT_FALSE(std::filesystem::exists(keys / "aggregator.next.key"));
  auto after = AggregatorIdentity::load_or_create(keys);
  EXPECT_EQ(after.key.public_key(), next);
  EXPECT_FALSE(after.next);
  EXPECT_EQ(after.retired_key_ids(), std::vector<std::string>{key_id_of(first)});
  EXPECT_THROW(after.switch_to_next(), std::logic_error);
}

// A switch cut short after retired.pub was written but before the next key was moved in: the
// old key is still in force and the next one prepared, and the old key is not "retired" (agents
// would drop the key still signing).
TEST(AggregatorIdentity, ASwitchCutShortBetweenItsStepsLeavesTheOldKeyInForce) {
  test::TempDir dir;
  const auto keys = dir.path() / "keys";
  auto id = AggregatorIdentity::load_or_create(keys);
  const auto first = id.key.public_key();
  const auto next = id.prepare_next().public_key();
  std::ofstream(keys / "retired.pub") << to_hex(first) << "\n";  // step 1 done, step 2 not
  auto crashed = AggregatorIdentity::load_or_create(keys);
  EXPECT_EQ(crashed.key.public_key(), first);
  ASSERT_TRUE(crashed.next);
  EXPECT_EQ(crashed.next->public_key(), next);
  EXPECT_TRUE(crashed.retired.empty());
  crashed.switch_to_next();  // finishes as a switch does
  EXPECT_EQ(crashed.retired_key_ids(), std::vector<std::string>{key_id_of(first)});
  EXPECT_EQ(AggregatorIdentity::load_or_create(keys).key.public_key(), next);
}

// A damaged retired.pub stops the start with the file and line, rather than dropping the list.
TEST(AggregatorIdentity, ADamagedRetiredListIsRefusedWithItsLine) {
  test::TempDir dir;
  const auto keys = dir.path() / "keys";
  AggregatorIdentity::load_or_create(keys);
  std::ofstream(keys / "retired.pub") << "# comment\nnot-a-key\n";
  try {
    AggregatorIdentity::load_or_create(keys);
    FAIL() << "a damaged retired.pub was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("retired.pub:2"), std::string::npos) << e.what();
  }
}

// enrolled_agents() is a count kept by add, rotate and revoke: after any sequence of them it
// equals the agents with a key in force, counted the long way.
TEST(AgentKeyRegistry, TheEnrolledCountFollowsEveryChange) {
  AgentKeyRegistry keys;
  auto counted = [&] {
    std::set<std::string> agents;
    for (const auto* k : keys.all())
      if (k->in_force()) agents.insert(k->post + "/" + k->agent);
    return agents.size();
  };
  std::mt19937 rng(7);
  for (int step = 0; step < 400; ++step) {
    const std::string agent = "agent-" + std::to_string(rng() % 6);
    const auto k = SigningKey::from_seed({static_cast<std::uint8_t>(step), static_cast<std::uint8_t>(step >> 8)});
    switch (rng() % 4) {
      case 0: keys.add({"bamako", agent, k.key_id(), k.public_key(), kNow + step, 0, "t"}); break;
      case 1:
        keys.rotate({"bamako", agent, k.key_id(), k.public_key(), kNow + step, 0, ""}, kNow + step + kHour);
        break;
      case 2: keys.revoke("bamako", agent, kNow + step); break;
      case 3:  // a store row read again: the same key, perhaps in another state
        if (const auto all = keys.all(); !all.empty()) {
          AgentKey again = *all[rng() % all.size()];
          if (rng() % 2) again.revoked_at_ms = again.revoked_at_ms ? 0 : kNow + step;
          keys.add(again);
        }
        break;
    }
    ASSERT_EQ(keys.enrolled_agents(), counted()) << "step " << step;
  }
  EXPECT_GT(keys.enrolled_agents(), 0u);
}

// Signatures verified on Paho's thread (SignaturePrecheck): the key that verified is handed to
// the io thread, whose check() trusts it only while it is still that key's verifier and the key
// is valid; anything else is verified again, so a stale or wrong precheck can cost speed but
// never let a batch through.
TEST(SignaturePrecheck, AKeyThatVerifiedOnAnotherThreadIsStillCheckedForValidity) {
  AgentKeyRegistry keys;
  SignaturePrecheck pre;
  auto k = SigningKey::generate(), other = SigningKey::generate();
  const auto signed_batch = encode_batch(batch(1), &k);
  BatchView v;
  ASSERT_EQ(decode_batch(bytes(signed_batch), v), DecodeError::None);
  auto at = [&](const VerifyKey* verified, std::int64_t now = kNow) {
    return keys.check(v.post_id, v.agent_id, v.key_id, bytes(signed_batch), v.signature_offset, now, verified);
  };
  pre.refresh(keys, kNow, 0);
  EXPECT_EQ(pre.verify(bytes(signed_batch)), nullptr) << "no key enrolled yet";

  keys.add({"bamako", "agent-1", k.key_id(), k.public_key(), kNow, 0, "t"});
  EXPECT_EQ(pre.verify(bytes(signed_batch)), nullptr) << "the snapshot is taken only by refresh()";
  pre.refresh(keys, kNow + 1, 100);
  EXPECT_EQ(pre.verify(bytes(signed_batch)), nullptr) << "within min_gap_ms of the last copy";
  pre.refresh(keys, kNow + 100, 100);
  auto verified = pre.verify(bytes(signed_batch));
  ASSERT_NE(verified, nullptr);
  EXPECT_EQ(verified.get(), keys.in_force("bamako", "agent-1")->verifier.get());
  EXPECT_EQ(at(verified.get()), SignatureVerdict::Signed);

  // An altered batch, or one signed by a key that is not the agent's, verifies to nothing.
  auto altered = signed_batch;
  altered[v.signature_offset + 7] ^= 0x01;  // the signature itself: same key id, same agent
  EXPECT_EQ(pre.verify(bytes(altered)), nullptr);
  EXPECT_EQ(pre.verify(bytes(encode_batch(batch(2), &other))), nullptr);
  EXPECT_EQ(pre.verify(bytes(encode_batch(batch(3)))), nullptr) << "unsigned";

  // Revoked after the precheck: refused all the same.
  keys.revoke("bamako", "agent-1", kNow + 5);
  EXPECT_EQ(at(verified.get(), kNow + 6), SignatureVerdict::RevokedKey);
  // Another key's verifier handed in for this one is not taken: the signature is checked here.
  auto altered_view = v;
  ASSERT_EQ(decode_batch(bytes(altered), altered_view), DecodeError::None);
  AgentKeyRegistry fresh;
  fresh.add({"bamako", "agent-1", k.key_id(), k.public_key(), kNow, 0, "t"});
  EXPECT_EQ(fresh.check(altered_view.post_id, altered_view.agent_id, altered_view.key_id, bytes(altered),
                        altered_view.signature_offset, kNow, verified.get()),
            SignatureVerdict::BadSignature)
      << "a verifier from another registry is not this key's";
}

// Signatures checked on one thread while the io thread enrols, revokes and refreshes: the
// snapshot is swapped whole (run under TSan by tools/test).
TEST(SignaturePrecheck, VerifiesOnOneThreadWhileTheRegistryChangesOnAnother) {
  AgentKeyRegistry keys;
  SignaturePrecheck pre;
  std::vector<SigningKey> agents;
  std::vector<std::vector<std::uint8_t>> batches;
  for (int a = 0; a < 8; ++a) {
    agents.push_back(SigningKey::generate());
    EventBatch b = batch(1);
    b.agent_id = "agent-" + std::to_string(a);
    batches.push_back(encode_batch(b, &agents.back()));
  }
  std::atomic<bool> stop{false};
  std::atomic<int> verified{0};
  std::thread paho([&] {
    while (!stop)
      for (const auto& b : batches) verified += pre.verify(bytes(b)) != nullptr;
  });
  for (int a = 0; a < 8; ++a)
    keys.add({"bamako", "agent-" + std::to_string(a), agents[a].key_id(), agents[a].public_key(), kNow, 0, "t"});
  pre.refresh(keys, kNow, 0);
  ASSERT_TRUE(test::wait_until([&] { return verified > 0; }, std::chrono::seconds(10)));
  for (int round = 1; round < 200; ++round) {
    for (int a = 0; a < 8; ++a) {
      const std::string agent = "agent-" + std::to_string(a);
      if (round % 2 == 0)
        keys.add({"bamako", agent, agents[a].key_id(), agents[a].public_key(), kNow + round, 0, "t"});
      else
        keys.revoke("bamako", agent, kNow + round);
    }
    pre.refresh(keys, kNow + round, 0);
  }
  pre.refresh(keys, kNow + 1000, 0);  // the last round (199) revoked every key
  stop = true;
  paho.join();
  for (const auto& b : batches) EXPECT_EQ(pre.verify(bytes(b)), nullptr);
}
