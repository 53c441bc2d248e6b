// Ed25519 identities and signed payloads (postwatch/signing.hpp, docs/security.md).
#include "postwatch/signing.hpp"
#include "postwatch/wire_codec.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <algorithm>
#include <fstream>

using namespace postwatch;

namespace {

EventBatch batch_of(std::uint64_t first_seq, std::size_t n) {
  EventBatch b;
  b.agent_id = "agent-1";
  b.post_id = "bamako";
  b.sent_at_ms = 1700000000123;
  for (std::size_t i = 0; i < n; ++i) {
    IndicatorEvent e;
    e.seq = first_seq + i;
    e.observed_at_ms = 1700000000000 + static_cast<std::int64_t>(i);
    e.indicator = "terrorism_threat_level";
    e.number = 3;
    e.note = i == 0 ? "raised after attack" : "";
    b.events.push_back(e);
  }
  return b;
}

std::span<const std::uint8_t> bytes(const std::vector<std::uint8_t>& v) { return {v.data(), v.size()}; }

}  // namespace

TEST(Signing, ASignatureVerifiesOnlyForItsMessageAndKey) {
  auto a = SigningKey::generate(), b = SigningKey::generate();
  std::vector<std::uint8_t> msg = {1, 2, 3, 4, 5};
  auto sig = a.sign(msg);
  EXPECT_TRUE(verify_signature(a.public_key(), msg, sig));
  EXPECT_FALSE(verify_signature(b.public_key(), msg, sig));
  msg[2] ^= 1;
  EXPECT_FALSE(verify_signature(a.public_key(), msg, sig));
  EXPECT_NE(a.key_id(), b.key_id());
  EXPECT_EQ(a.key_id().size(), 16u);
  EXPECT_EQ(a.key_id(), key_id_of(a.public_key()));
}

TEST(Signing, HexRoundTripsAndRefusesWhatIsNotHex) {
  auto k = SigningKey::generate();
  auto hex = to_hex(k.public_key());
  EXPECT_EQ(hex.size(), 64u);
  auto back = public_key_from_hex(hex);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, k.public_key());
  EXPECT_FALSE(public_key_from_hex(hex.substr(2)));
  EXPECT_FALSE(public_key_from_hex("zz" + hex.substr(2)));
}

TEST(Signing, AKeyFileIsWrittenOwnerOnlyReadBackAndNeverReplaced) {
  test::TempDir dir;
  auto file = dir.path() / "agent.key";
  bool created = false;
  auto k = SigningKey::load_or_create(file, created);
  EXPECT_TRUE(created);
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto again = SigningKey::load_or_create(file, created);
  EXPECT_FALSE(created);
  EXPECT_EQ(again.public_key(), k.public_key());
  EXPECT_THROW(SigningKey::generate().save(file), std::runtime_error);
  EXPECT_EQ(SigningKey::load(file).public_key(), k.public_key());
}

TEST(Signing, AKeyFileOthersCanReadOrThatHoldsNoKeyIsRefusedWithItsName) {
  test::TempDir dir;
  auto file = dir.path() / "agent.key";
  SigningKey::generate().save(file);
  ::chmod(file.c_str(), 0644);
  try {
    SigningKey::load(file);
    FAIL() << "an exposed key was loaded";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("chmod 600"), std::string::npos) << e.what();
  }
  auto junk = dir.path() / "junk.key";
  std::ofstream(junk) << "not a key\n";
  ::chmod(junk.c_str(), 0600);
  try {
    SigningKey::load(junk);
    FAIL() << "junk was loaded as a key";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("junk.key"), std::string::npos) << e.what();
  }
}

TEST(SignedPayload, ASignedBatchDecodesWithItsKeyIdAndVerifies) {
  auto k = SigningKey::generate();
  auto payload = encode_batch(batch_of(10, 3), &k);
  BatchView v;
  ASSERT_EQ(decode_batch(bytes(payload), v), DecodeError::None);
  EXPECT_EQ(v.key_id, k.key_id());
  ASSERT_NE(v.signature_offset, 0u);
  EXPECT_TRUE(verify_payload(bytes(payload), v.signature_offset, k.public_key()));
  EXPECT_FALSE(verify_payload(bytes(payload), v.signature_offset, SigningKey::generate().public_key()));
}

TEST(SignedPayload, AnUnsignedBatchSaysSo) {
  auto payload = encode_batch(batch_of(10, 3));
  BatchView v;
  ASSERT_EQ(decode_batch(bytes(payload), v), DecodeError::None);
  EXPECT_TRUE(v.key_id.empty());
  EXPECT_EQ(v.signature_offset, 0u);
}

// Every byte is covered: a broker that changes any one of them (a seq, a value, the key id,
// the layout) makes the signature fail, unless the change breaks the buffer altogether.
TEST(SignedPayload, ChangingAnyByteOfASignedBatchFailsItsSignature) {
  auto k = SigningKey::generate();
  auto payload = encode_batch(batch_of(10, 2), &k);
  std::size_t verified = 0;
  for (std::size_t i = 0; i < payload.size(); ++i) {
    auto forged = payload;
    forged[i] ^= 0x01;
    BatchView v;
    if (decode_batch(bytes(forged), v) != DecodeError::None || v.signature_offset == 0) continue;
    EXPECT_FALSE(verify_payload(bytes(forged), v.signature_offset, k.public_key())) << "byte " << i;
    ++verified;
  }
  EXPECT_GT(verified, payload.size() / 2);
}

// A replay with a forged seq: the same events under another seq do not carry the signature over.
TEST(SignedPayload, AReplayedBatchWithAnotherSeqFailsTheSignature) {
  auto k = SigningKey::generate();
  auto original = encode_batch(batch_of(10, 2), &k);
  BatchView v;
  ASSERT_EQ(decode_batch(bytes(original), v), DecodeError::None);
  std::vector<std::uint8_t> signature(original.begin() + static_cast<std::ptrdiff_t>(v.signature_offset),
                                      original.begin() + static_cast<std::ptrdiff_t>(v.signature_offset + 64));
  auto forged = encode_batch(batch_of(500, 2), &k);  // same layout, other seqs
  BatchView f;
  ASSERT_EQ(decode_batch(bytes(forged), f), DecodeError::None);
  std::copy(signature.begin(), signature.end(), forged.begin() + static_cast<std::ptrdiff_t>(f.signature_offset));
  EXPECT_FALSE(verify_payload(bytes(forged), f.signature_offset, k.public_key()));
}

TEST(SignedPayload, SignedStatesAndConfirmationsVerifyAndKeepTheirFields) {
  auto agent = SigningKey::generate(), aggregator = SigningKey::generate();
  AgentState st;
  st.agent_id = "agent-1";
  st.post_id = "bamako";
  st.online = false;
  st.at_ms = 42;
  auto sp = encode_agent_state(st, &agent);
  AgentState sd;
  ASSERT_EQ(decode_agent_state(bytes(sp), sd), DecodeError::None);
  EXPECT_EQ(sd.key_id, agent.key_id());
  EXPECT_FALSE(sd.online);
  EXPECT_TRUE(verify_payload(bytes(sp), sd.signature_offset, agent.public_key()));

  DeliveryConfirm c;
  c.agent_id = "agent-1";
  c.post_id = "bamako";
  c.through_seq = 1234;
  auto cp = encode_delivery_confirm(c, &aggregator);
  DeliveryConfirm cd;
  ASSERT_EQ(decode_delivery_confirm(bytes(cp), cd), DecodeError::None);
  EXPECT_EQ(cd.through_seq, 1234u);
  EXPECT_EQ(cd.key_id, aggregator.key_id());
  EXPECT_TRUE(verify_payload(bytes(cp), cd.signature_offset, aggregator.public_key()));
  EXPECT_FALSE(verify_payload(bytes(cp), cd.signature_offset, agent.public_key()));
  // A confirmation for a higher seq, signed by someone else, is not the aggregator's.
  c.through_seq = 999999;
  auto forged = encode_delivery_confirm(c, &agent);
  ASSERT_EQ(decode_delivery_confirm(bytes(forged), cd), DecodeError::None);
  EXPECT_FALSE(verify_payload(bytes(forged), cd.signature_offset, aggregator.public_key()));
}

TEST(SignedPayload, AConfirmationsKeyRotationFieldsAreCoveredByItsSignature) {
  auto current = SigningKey::generate(), next = SigningKey::generate();
  DeliveryConfirm c;
  c.agent_id = "agent-1";
  c.post_id = "bamako";
  c.through_seq = 77;
  c.next_key.assign(next.public_key().begin(), next.public_key().end());
  c.retired_key_ids = {"0123456789abcdef", "fedcba9876543210"};
  auto cp = encode_delivery_confirm(c, &current);
  DeliveryConfirm cd;
  ASSERT_EQ(decode_delivery_confirm(bytes(cp), cd), DecodeError::None);
  EXPECT_EQ(cd.next_key, c.next_key);
  EXPECT_EQ(cd.retired_key_ids, c.retired_key_ids);
  ASSERT_TRUE(verify_payload(bytes(cp), cd.signature_offset, current.public_key()));

  // A broker that swaps the next key for its own breaks the signature.
  auto at = std::search(cp.begin(), cp.end(), next.public_key().begin(), next.public_key().end());
  ASSERT_NE(at, cp.end());
  auto swapped = cp;
  swapped[static_cast<std::size_t>(at - cp.begin())] ^= 0x01;
  ASSERT_EQ(decode_delivery_confirm(bytes(swapped), cd), DecodeError::None);
  EXPECT_FALSE(verify_payload(bytes(swapped), cd.signature_offset, current.public_key()));

  // A next key that is not 32 bytes, or too many retired ids, is refused by the decoder.
  c.next_key.resize(31);
  EXPECT_EQ(decode_delivery_confirm(bytes(encode_delivery_confirm(c, &current)), cd), DecodeError::BadValue);
  c.next_key.clear();
  c.retired_key_ids.assign(WireLimits::max_retired_keys + 1, "0123456789abcdef");
  EXPECT_EQ(decode_delivery_confirm(bytes(encode_delivery_confirm(c, &current)), cd), DecodeError::FieldTooLong);
  c.retired_key_ids = {""};
  EXPECT_EQ(decode_delivery_confirm(bytes(encode_delivery_confirm(c, &current)), cd), DecodeError::FieldTooLong);
  // Without them a confirmation decodes as before, with both empty.
  c.retired_key_ids.clear();
  ASSERT_EQ(decode_delivery_confirm(bytes(encode_delivery_confirm(c, &current)), cd), DecodeError::None);
  EXPECT_TRUE(cd.next_key.empty());
  EXPECT_TRUE(cd.retired_key_ids.empty());
}

TEST(SignedPayload, AHeartbeatReportsTheAggregatorKeysItsAgentTrusts) {
  auto agent = SigningKey::generate();
  AgentState st;
  st.agent_id = "agent-1";
  st.post_id = "bamako";
  st.aggregator_key_ids = {"0123456789abcdef", "fedcba9876543210"};
  auto sp = encode_agent_state(st, &agent);
  AgentState sd;
  ASSERT_EQ(decode_agent_state(bytes(sp), sd), DecodeError::None);
  EXPECT_EQ(sd.aggregator_key_ids, st.aggregator_key_ids);
  EXPECT_TRUE(verify_payload(bytes(sp), sd.signature_offset, agent.public_key()));
  st.aggregator_key_ids.assign(WireLimits::max_trusted_keys + 1, "0123456789abcdef");
  EXPECT_EQ(decode_agent_state(bytes(encode_agent_state(st, &agent)), sd), DecodeError::FieldTooLong);
}

TEST(SignedPayload, AMisplacedOrShortSignatureIsRefusedWithoutReadingPastTheBuffer) {
  auto k = SigningKey::generate();
  auto payload = encode_batch(batch_of(1, 1), &k);
  EXPECT_FALSE(verify_payload(bytes(payload), 0, k.public_key()));
  EXPECT_FALSE(verify_payload(bytes(payload), payload.size() - 10, k.public_key()));
  EXPECT_FALSE(verify_payload({}, 8, k.public_key()));
}
