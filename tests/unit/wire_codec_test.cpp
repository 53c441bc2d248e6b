#include "postwatch/wire_codec.hpp"

#include <gtest/gtest.h>

#include <limits>
#include <random>
#include <set>

using namespace postwatch;

namespace {

EventBatch sample_batch(std::size_t n = 3) {
  EventBatch b;
  b.agent_id = "agent-1";
  b.post_id = "bamako";
  b.sent_at_ms = 1700000000123;
  for (std::size_t i = 0; i < n; ++i) {
    IndicatorEvent e;
    e.seq = 100 + i;
    e.observed_at_ms = 1700000000000 + static_cast<std::int64_t>(i);
    e.indicator = "terrorism_threat_level";
    e.kind = ValueKind::Level;
    e.number = 3 + static_cast<double>(i % 2);
    if (i == 1) e.note = "raised after attack";
    if (i == 2) e.tags = {{"source", "dsc"}, {"confidence", "high"}};
    b.events.push_back(e);
  }
  IndicatorEvent t;
  t.seq = 200;
  t.indicator = "situation_note";
  t.kind = ValueKind::Text;
  t.text = "Curfew extended in the capital";
  b.events.push_back(t);
  return b;
}

}  // namespace

TEST(WireCodec, RoundTripKeepsEveryField) {
  auto in = sample_batch();
  auto bytes = encode_batch(in);
  EventBatch out;
  ASSERT_EQ(decode_batch(bytes, out), DecodeError::None);
  EXPECT_EQ(out.agent_id, in.agent_id);
  EXPECT_EQ(out.post_id, in.post_id);
  EXPECT_EQ(out.sent_at_ms, in.sent_at_ms);
  ASSERT_EQ(out.events.size(), in.events.size());
  for (std::size_t i = 0; i < in.events.size(); ++i) {
    EXPECT_EQ(out.events[i].seq, in.events[i].seq);
    EXPECT_EQ(out.events[i].observed_at_ms, in.events[i].observed_at_ms);
    EXPECT_EQ(out.events[i].indicator, in.events[i].indicator);
    EXPECT_EQ(out.events[i].kind, in.events[i].kind);
    EXPECT_EQ(out.events[i].number, in.events[i].number);
    EXPECT_EQ(out.events[i].text, in.events[i].text);
    EXPECT_EQ(out.events[i].note, in.events[i].note);
    EXPECT_EQ(out.events[i].tags, in.events[i].tags);
  }
}

TEST(WireCodec, BatchSaysWhichCatalogueVersionItsEventsWereCheckedWith) {
  auto in = sample_batch();
  EventBatch out;
  ASSERT_EQ(decode_batch(encode_batch(in), out), DecodeError::None);
  EXPECT_EQ(out.catalogue_version, 0u);  // not said
  in.catalogue_version = 7;
  auto bytes = encode_batch(in);
  ASSERT_EQ(decode_batch(bytes, out), DecodeError::None);
  EXPECT_EQ(out.catalogue_version, 7u);
  for (const auto& e : out.events) EXPECT_EQ(e.catalogue_version, 7u);
  BatchView view;
  ASSERT_EQ(decode_batch(bytes, view), DecodeError::None);
  EXPECT_EQ(view.catalogue_version, 7u);
}

TEST(WireCodec, ViewDecodeReadsWithoutCopying) {
  auto bytes = encode_batch(sample_batch());
  BatchView v;
  ASSERT_EQ(decode_batch(bytes, v), DecodeError::None);
  ASSERT_EQ(v.events.size(), 4u);
  // Views point into the buffer itself.
  auto* begin = reinterpret_cast<const char*>(bytes.data());
  EXPECT_GE(v.events[0].indicator.data(), begin);
  EXPECT_LT(v.events[0].indicator.data(), begin + bytes.size());
}

TEST(WireCodec, RejectsWrongIdentifierAndGarbage) {
  BatchView v;
  std::vector<std::uint8_t> garbage = {'g', 'a', 'r', 'b', 'a', 'g', 'e'};
  EXPECT_EQ(decode_batch(garbage, v), DecodeError::WrongIdentifier);
  std::vector<std::uint8_t> empty;
  EXPECT_EQ(decode_batch(empty, v), DecodeError::WrongIdentifier);
  auto bytes = encode_batch(sample_batch());
  bytes[4] = 'X';  // file identifier lives at bytes 4..7
  EXPECT_EQ(decode_batch(bytes, v), DecodeError::WrongIdentifier);
}

TEST(WireCodec, TruncatedBuffersAreRejectedNeverRead) {
  auto in = sample_batch();
  auto bytes = encode_batch(in);
  int rejected = 0;
  for (std::size_t len = 8; len < bytes.size(); ++len) {
    std::vector<std::uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(len));
    EventBatch out;
    if (decode_batch(cut, out) != DecodeError::None) {
      ++rejected;
      continue;
    }
    // Only trailing alignment padding may be cut without harm: then the content is intact.
    EXPECT_EQ(out.events.size(), in.events.size()) << "length " << len;
    EXPECT_EQ(out.events.back().text, in.events.back().text) << "length " << len;
  }
  EXPECT_GE(rejected, static_cast<int>(bytes.size()) - 8 - 8);
}

TEST(WireCodec, RandomCorruptionNeverCrashesAndIsUsuallyCaught) {
  auto good = encode_batch(sample_batch(20));
  std::mt19937 rng(42);
  int rejected = 0;
  const int rounds = 5000;
  for (int i = 0; i < rounds; ++i) {
    auto bytes = good;
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) bytes[8 + rng() % (bytes.size() - 8)] ^= static_cast<std::uint8_t>(1 + rng() % 255);
    BatchView v;
    auto err = decode_batch(bytes, v);
    if (err != DecodeError::None)
      ++rejected;
    else
      for (const auto& e : v.events) EXPECT_LE(e.indicator.size(), WireLimits::max_id_bytes);  // views stay in bounds
  }
  // Flips in value bytes (numbers, characters) are legal buffers; offsets and lengths are not.
  EXPECT_GT(rejected, rounds / 10);
}

TEST(WireCodec, EnforcesLimits) {
  BatchView v;
  std::vector<std::uint8_t> huge(WireLimits::max_payload_bytes + 1, 0);
  EXPECT_EQ(decode_batch(huge, v), DecodeError::Oversized);

  auto b = sample_batch(1);
  b.events[0].note = std::string(WireLimits::max_note_bytes + 1, 'x');
  EXPECT_EQ(decode_batch(encode_batch(b), v), DecodeError::FieldTooLong);

  b = sample_batch(1);
  b.events[0].number = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(decode_batch(encode_batch(b), v), DecodeError::BadValue);

  b = sample_batch(0);
  b.events.clear();
  for (std::size_t i = 0; i <= WireLimits::max_events_per_batch; ++i) {
    IndicatorEvent e;
    e.seq = i;
    e.indicator = "x1";
    b.events.push_back(e);
  }
  EXPECT_EQ(decode_batch(encode_batch(b), v), DecodeError::TooManyEvents);
}

TEST(WireCodec, ErrorNamesAreDistinct) {
  std::set<std::string_view> names;
  for (std::size_t i = 0; i < decode_error_count; ++i) names.insert(to_string(static_cast<DecodeError>(i)));
  EXPECT_EQ(names.size(), decode_error_count);
}

TEST(WireCodec, DeliveryConfirmRoundTripsAndRefusesOtherMessages) {
  DeliveryConfirm c{"gw-1", "bamako", 41'234, 1'795'000'000'000, 40'001};
  DeliveryConfirm back;
  ASSERT_EQ(decode_delivery_confirm(encode_delivery_confirm(c), back), DecodeError::None);
  EXPECT_EQ(back.agent_id, "gw-1");
  EXPECT_EQ(back.post_id, "bamako");
  EXPECT_EQ(back.through_seq, 41'234u);
  EXPECT_EQ(back.at_ms, 1'795'000'000'000);
  EXPECT_EQ(back.resend_from, 40'001u);

  // A batch or an agent state on the confirm topic is not a confirmation.
  EXPECT_EQ(decode_delivery_confirm(encode_batch(sample_batch(1)), back), DecodeError::WrongIdentifier);
  AgentState st;
  st.agent_id = "gw-1";
  st.post_id = "bamako";
  EXPECT_EQ(decode_delivery_confirm(encode_agent_state(st), back), DecodeError::WrongIdentifier);
  auto bytes = encode_delivery_confirm(c);
  // A cut buffer (own copy, so ASan sees any read past it) is refused, or, when only the
  // trailing padding went, still decodes to the same confirmation.
  for (std::size_t cut = 0; cut < bytes.size(); ++cut) {
    std::vector<std::uint8_t> part(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(cut));
    DeliveryConfirm got;
    if (decode_delivery_confirm(part, got) == DecodeError::None) {
      EXPECT_EQ(got.through_seq, 41'234u) << cut;
    }
  }
  EXPECT_EQ(decode_delivery_confirm(std::span(bytes.data(), 7), back), DecodeError::WrongIdentifier);
  c.agent_id.assign(WireLimits::max_id_bytes + 1, 'a');
  EXPECT_EQ(decode_delivery_confirm(encode_delivery_confirm(c), back), DecodeError::FieldTooLong);
}

TEST(WireCodec, HeartbeatCarriesTheSentThroughSeq) {
  AgentState st;
  st.agent_id = "gw-1";
  st.post_id = "bamako";
  st.has_metrics = true;
  st.metrics.sent_through_seq = 987'654;
  st.metrics.confirmed_through_seq = 987'000;
  st.metrics.held_from_seq = 987'001;
  AgentState back;
  ASSERT_EQ(decode_agent_state(encode_agent_state(st), back), DecodeError::None);
  ASSERT_TRUE(back.has_metrics);
  EXPECT_EQ(back.metrics.sent_through_seq, 987'654u);
  EXPECT_EQ(back.metrics.confirmed_through_seq, 987'000u);
  EXPECT_EQ(back.metrics.held_from_seq, 987'001u);
}

TEST(WireCodec, BirthSaysWhetherTheAgentAwaitsConfirmation) {
  AgentState st;
  st.agent_id = "gw-1";
  st.post_id = "bamako";
  st.first_unacked_seq = 77;
  AgentState back;
  for (bool awaits : {true, false}) {
    st.awaits_confirmation = awaits;
    ASSERT_EQ(decode_agent_state(encode_agent_state(st), back), DecodeError::None);
    EXPECT_EQ(back.awaits_confirmation, awaits);
    EXPECT_EQ(back.first_unacked_seq, 77u);
  }
}
