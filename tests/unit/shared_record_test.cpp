// The trust registry a cluster shares (aggregator/src/trust/shared_record.hpp, docs/security.md
// "Clusters"): sealed entries, the monotone merge, and enrolments decided on one agent's entry.
#include "trust/shared_record.hpp"
#include "postwatch/enrolment.hpp"
#include "trust/enrolment_desk.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using namespace postwatch;
using namespace postwatch::aggregator;

namespace {

constexpr std::int64_t kNow = 1'800'000'000'000;
constexpr std::int64_t kHour = 3'600'000;

// What two instances of one cluster hold alike: the aggregator key and the enrolment secret.
struct Cluster {
  SigningKey aggregator = SigningKey::generate();
  std::vector<std::uint8_t> secret = random_bytes(32);
  AgentKeyRegistry issued_keys;  // the issuing desk's (unused)
  EnrolmentDesk issuer{secret, aggregator, issued_keys};

  struct Token {
    std::string text;
    IssuedToken record;
  };
  Token issue(const std::string& agent = "gw-1") {
    auto i = issuer.issue("bamako", agent, kHour, kNow);
    return {i.text, *i.token};
  }
  static std::vector<std::uint8_t> request(const Token& t, const SigningKey& key, const std::string& agent = "gw-1") {
    std::string why;
    auto parsed = parse_enrolment_token(t.text, why);
    EXPECT_TRUE(parsed) << why;
    return enrolment_request(*parsed, "bamako", agent, key, kNow);
  }
  AgentDecision decide(const std::vector<AgentKey>& keys, const Token& t, const SigningKey& key,
                       std::int64_t now = kNow) {
    auto payload = request(t, key);
    EnrolRequest r;
    EXPECT_EQ(decode_enrol_request(payload, r), DecodeError::None);
    return decide_on_record(secret, aggregator, keys, t.record, r, payload, now, kHour);
  }
};

}  // namespace

TEST(SharedRecord, AnEntryOpensOnlyWithTheKeyThatSealedItUnderItsOwnNameAndGroup) {
  auto key = SigningKey::generate();
  const std::string body = R"({"keys":[]})";
  auto value = seal_entry(key, "ops", "agent.bamako.gw-1", body);
  auto opened = open_entry(key.public_key(), "ops", "agent.bamako.gw-1", value);
  EXPECT_TRUE(opened.verified) << opened.why;
  EXPECT_EQ(opened.body, body);
  EXPECT_EQ(opened.key_id, key.key_id());

  // Moved to another agent's name, or to another group's bucket: refused.
  EXPECT_FALSE(open_entry(key.public_key(), "ops", "agent.bamako.gw-2", value).verified);
  EXPECT_FALSE(open_entry(key.public_key(), "other", "agent.bamako.gw-1", value).verified);
  // Sealed with another key (a broker's, or a misprovisioned instance's): refused, naming it.
  auto other = SigningKey::generate();
  auto foreign =
      open_entry(key.public_key(), "ops", "agent.bamako.gw-1", seal_entry(other, "ops", "agent.bamako.gw-1", body));
  EXPECT_FALSE(foreign.verified);
  EXPECT_EQ(foreign.key_id, other.key_id());
  EXPECT_NE(foreign.why.find(other.key_id()), std::string::npos) << foreign.why;
  // The body altered after sealing, the key id claimed as ours: refused.
  auto j = nlohmann::json::parse(value);
  j["body"] = R"({"keys":[{"post":"bamako"}]})";
  EXPECT_FALSE(open_entry(key.public_key(), "ops", "agent.bamako.gw-1", j.dump()).verified);
  EXPECT_FALSE(open_entry(key.public_key(), "ops", "agent.bamako.gw-1", "not json").verified);
}

TEST(SharedRecord, MergingKeepsRevocationsAndAReplayedOldEntryChangesNothing) {
  Cluster c;
  auto agent_key = SigningKey::generate();
  auto enrolled = c.decide({}, c.issue(), agent_key);
  ASSERT_TRUE(enrolled.reply.accepted) << enrolled.reply.reason;
  ASSERT_TRUE(enrolled.changed);
  ASSERT_EQ(enrolled.keys.size(), 1u);
  const auto before_revocation = enrolled.keys;

  auto revoked = enrolled.keys;
  revoked[0].revoked_at_ms = kNow + 10;
  // The old entry again (a broker replaying it) does not undo the revocation, in either order.
  EXPECT_TRUE(merge_keys(revoked, before_revocation)[0].revoked());
  EXPECT_TRUE(merge_keys(before_revocation, revoked)[0].revoked());
  EXPECT_TRUE(same_keys(merge_keys(revoked, before_revocation), revoked));

  AgentKeyRegistry registry;
  for (const auto& k : revoked) registry.add(k);
  EXPECT_FALSE(registry.merge(before_revocation[0]));
  EXPECT_EQ(registry.enrolled_agents(), 0u);
  // The earlier of two revocations stands.
  auto earlier = revoked;
  earlier[0].revoked_at_ms = kNow + 5;
  EXPECT_TRUE(registry.merge(earlier[0]));
  EXPECT_EQ(registry.find("bamako", "gw-1", agent_key.key_id())->revoked_at_ms, kNow + 5);

  std::vector<AgentKey> parsed;
  ASSERT_TRUE(parse_agent_record(agent_record_body(revoked), parsed));
  EXPECT_TRUE(same_keys(parsed, revoked));
}

// The entry of one agent decides, whichever instance reads it: a token works once, a second
// key is not put in force before the first is revoked, and the same request again gets the
// same answer.
TEST(SharedRecord, DecidedOnTheAgentsEntryATokenWorksOnceAndOneKeyIsInForce) {
  Cluster c;
  auto first_token = c.issue();
  auto first = SigningKey::generate(), second = SigningKey::generate();
  auto enrolled = c.decide({}, first_token, first);
  ASSERT_TRUE(enrolled.reply.accepted) << enrolled.reply.reason;
  EXPECT_EQ(enrolled.keys.at(0).token_id, first_token.record.id);

  // The same request again (its answer was lost): accepted, nothing to write.
  auto again = c.decide(enrolled.keys, first_token, first);
  EXPECT_TRUE(again.reply.accepted) << again.reply.reason;
  EXPECT_FALSE(again.changed);
  // The token with another key, on another instance that knows only the entry: used already.
  auto reused = c.decide(enrolled.keys, first_token, second);
  EXPECT_FALSE(reused.reply.accepted);
  EXPECT_NE(reused.reply.reason.find("used already"), std::string::npos) << reused.reply.reason;
  EXPECT_FALSE(reused.changed);
  // A second token for the same agent: refused while the first key is in force.
  auto second_token = c.issue();
  auto twice = c.decide(enrolled.keys, second_token, second);
  EXPECT_FALSE(twice.reply.accepted);
  EXPECT_NE(twice.reply.reason.find("revoke"), std::string::npos) << twice.reply.reason;
  // Revoked (on any instance, merged into the entry), the second token enrols the second key.
  auto revoked = enrolled.keys;
  revoked[0].revoked_at_ms = kNow + 1;
  auto after = c.decide(merge_keys(enrolled.keys, revoked), second_token, second, kNow + 2);
  ASSERT_TRUE(after.reply.accepted) << after.reply.reason;
  EXPECT_TRUE(after.changed);
  ASSERT_EQ(after.keys.size(), 2u);
  EXPECT_TRUE(after.keys[0].revoked());
  EXPECT_TRUE(after.keys[1].in_force());
}

// A key's entry and its token's may reach an instance in either order; the first key that came
// with the token marks it used, and a use once marked stays.
TEST(SharedRecord, ATokenIsMarkedUsedByTheKeyThatCameWithItAndStaysSo) {
  IssuedToken t;
  t.id = "tok-1";
  AgentKey rotated, enrolled, other;
  rotated.key_id = "k0";  // a rotation names no token
  enrolled.key_id = "k1";
  enrolled.token_id = "tok-1";
  enrolled.enrolled_at_ms = kNow;
  other.key_id = "k2";
  other.token_id = "tok-1";
  other.enrolled_at_ms = kNow + 1;

  mark_used(t, std::vector<AgentKey>{rotated});
  EXPECT_EQ(t.used_at_ms, 0);
  EXPECT_EQ(t.used_by_key, "");
  mark_used(t, std::vector<AgentKey>{rotated, enrolled, other});
  EXPECT_EQ(t.used_at_ms, kNow);
  EXPECT_EQ(t.used_by_key, "k1");
  mark_used(t, std::vector<AgentKey>{other});
  EXPECT_EQ(t.used_by_key, "k1") << "a use once marked stays";
}
