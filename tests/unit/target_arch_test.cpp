// What a board's architecture can get wrong and x86 forgives: armhf is 32-bit, and its Debian 12
// libraries keep a 32-bit time_t; both ARM targets fault or misread on data at odd addresses.
// These run natively and, cross-built, under qemu-user on arm64 and armhf (cross-build --tests).
#include "postwatch/agent/spool_record.hpp"
#include "postwatch/agent/spool_store.hpp"
#include "postwatch/clock.hpp"
#include "postwatch/wire_codec.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstring>
#include <limits>

using namespace postwatch;
using namespace postwatch::agent;

namespace {

// 2100-01-01T00:00:00Z: past 2038-01-19, where a signed 32-bit time_t in seconds ends.
constexpr std::int64_t k2100Ms = 4102444800000;

IndicatorEvent event_at(std::uint64_t seq, std::int64_t at_ms) {
  IndicatorEvent e;
  e.seq = seq;
  e.observed_at_ms = at_ms;
  e.indicator = "terrorism_threat_level";
  e.kind = ValueKind::Level;
  e.number = 3;
  e.note = "after 2038";
  e.tags = {{"source", "dsc"}};
  return e;
}

std::shared_ptr<spdlog::logger> quiet_log() {
  return std::make_shared<spdlog::logger>("target-arch", std::make_shared<spdlog::sinks::null_sink_mt>());
}

}  // namespace

TEST(TargetArch, SaysWhatItRunsOn) {
  // Not a check: the line in the test log that says which architecture these results are for.
  std::printf("pointer %zu bytes, time_t %zu bytes, long %zu bytes\n", sizeof(void*), sizeof(std::time_t),
              sizeof(long));
  EXPECT_EQ(sizeof(std::int64_t), 8u);
}

TEST(TargetArch, SpoolRecordsCarryTimesPast2038AndDecodeAtAnyAlignment) {
  std::string record;
  encode_record(event_at(42, k2100Ms), record);
  // Records sit at any offset in a segment buffer: decode from every alignment.
  for (std::size_t offset = 0; offset < 8; ++offset) {
    std::string shifted(offset, '\0');
    shifted += record;
    IndicatorEvent out;
    std::size_t consumed = 0;
    ASSERT_EQ(decode_record(std::string_view(shifted).substr(offset), out, consumed), RecordStatus::Ok) << offset;
    EXPECT_EQ(consumed, record.size());
    EXPECT_EQ(out.seq, 42u);
    EXPECT_EQ(out.observed_at_ms, k2100Ms) << offset;
    EXPECT_EQ(out.number, 3.0);
    EXPECT_EQ(out.note, "after 2038");
    ASSERT_EQ(out.tags.size(), 1u);
  }
}

TEST(TargetArch, TheSpoolKeepsEventsPast2038AndAgesThemWithA2100Clock) {
  postwatch::test::TempDir dir;
  SpoolOptions o;
  o.dir = dir.path() / "spool";
  o.max_age = std::chrono::hours(24 * 7);
  o.segment_bytes = 64;  // one event per segment, so ageing can drop whole segments
  {
    SpoolStore spool(o, quiet_log());
    for (int i = 0; i < 3; ++i) spool.append(event_at(0, k2100Ms + i));
    spool.maintain(now_utc_ms() + 3600 * 1000);  // an hour after appending: nothing is old yet
    EXPECT_EQ(spool.stats().events, 3u);
  }
  SpoolStore reopened(o, quiet_log());  // written and read back on this architecture
  std::vector<IndicatorEvent> out;
  ASSERT_EQ(reopened.read(reopened.first_seq(), 10, out), 3u);
  EXPECT_EQ(out[0].observed_at_ms, k2100Ms);
  EXPECT_EQ(out[2].observed_at_ms, k2100Ms + 2);
  // A clock in 2100: everything appended today is past max_age, except the segment still written.
  reopened.maintain(k2100Ms);
  EXPECT_EQ(reopened.stats().events, 1u);
}

TEST(TargetArch, WireMessagesCarryTimesPast2038FromAnyAlignment) {
  EventBatch batch{"board-1", "bamako", k2100Ms + 500, {event_at(7, k2100Ms), event_at(8, k2100Ms + 1)}, 2};
  AgentState state;
  state.agent_id = "board-1";
  state.post_id = "bamako";
  state.online = true;
  state.at_ms = k2100Ms;
  state.last_clock_jump_at_ms = k2100Ms - 1;
  DeliveryConfirm confirm{"board-1", "bamako", 8, k2100Ms + 2, 0};
  const auto batch_bytes = encode_batch(batch);
  const auto state_bytes = encode_agent_state(state);
  const auto confirm_bytes = encode_delivery_confirm(confirm);
  // A payload at an odd address (an offset into a larger buffer): the owning decoders must not
  // read it in place. Before they copied it, armhf died here with SIGBUS.
  auto at_offset = [](const std::vector<std::uint8_t>& bytes, std::size_t offset) {
    std::vector<std::uint8_t> shifted(offset + bytes.size());
    std::memcpy(shifted.data() + offset, bytes.data(), bytes.size());
    return shifted;
  };
  for (std::size_t offset = 0; offset < 8; ++offset) {
    auto b = at_offset(batch_bytes, offset);
    EventBatch out;
    ASSERT_EQ(decode_batch(std::span<const std::uint8_t>(b).subspan(offset), out), DecodeError::None) << offset;
    EXPECT_EQ(out.sent_at_ms, k2100Ms + 500);
    ASSERT_EQ(out.events.size(), 2u);
    EXPECT_EQ(out.events[1].observed_at_ms, k2100Ms + 1);
    EXPECT_EQ(out.events[0].tags.size(), 1u);
    EXPECT_EQ(out.clock_epoch, 2u);

    auto s = at_offset(state_bytes, offset);
    AgentState state_out;
    ASSERT_EQ(decode_agent_state(std::span<const std::uint8_t>(s).subspan(offset), state_out), DecodeError::None);
    EXPECT_EQ(state_out.at_ms, k2100Ms);
    EXPECT_EQ(state_out.last_clock_jump_at_ms, k2100Ms - 1);

    auto c = at_offset(confirm_bytes, offset);
    DeliveryConfirm confirm_out;
    ASSERT_EQ(decode_delivery_confirm(std::span<const std::uint8_t>(c).subspan(offset), confirm_out),
              DecodeError::None);
    EXPECT_EQ(confirm_out.through_seq, 8u);
    EXPECT_EQ(confirm_out.at_ms, k2100Ms + 2);
  }
  // The view decoder reads in place: from an aligned buffer (every heap buffer is) it sees the same.
  BatchView view;
  ASSERT_EQ(decode_batch(batch_bytes, view), DecodeError::None);
  EXPECT_EQ(view.events[0].observed_at_ms, k2100Ms);
}

TEST(TargetArch, TheWallClockIsReadInSixtyFourBits) {
  // now_utc_ms is int64 milliseconds on every target; today it agrees with the C library's
  // clock (a 32-bit time_t would still agree today, so this checks the type and the reading,
  // and the 2038 note in docs/deploy.md says what armhf's libraries do after 2038).
  static_assert(std::is_same_v<decltype(now_utc_ms()), std::int64_t>);
  const std::int64_t ours = now_utc_ms();
  const std::int64_t libc = static_cast<std::int64_t>(std::time(nullptr)) * 1000;
  EXPECT_NEAR(static_cast<double>(ours), static_cast<double>(libc), 5000.0);
  EXPECT_GT(ours, std::int64_t{1700000000000});  // after 2023: the clock is read, not zero
}
