#include "postwatch/agent/spool_store.hpp"
#include "postwatch/agent/spool_record.hpp"
#include "support/captured_log.hpp"
#include "support/test_support.hpp"

#include <sys/resource.h>

#include <gtest/gtest.h>

#include <spdlog/spdlog.h>
#include <set>

#include <csignal>
#include <fstream>
#include <sstream>

using namespace postwatch;
using namespace postwatch::agent;
namespace fs = std::filesystem;

namespace {

IndicatorEvent event(int i) {
  IndicatorEvent e;
  e.indicator = "terrorism_threat_level";
  e.kind = ValueKind::Level;
  e.number = 1 + i % 5;
  e.observed_at_ms = 1700000000000 + i;
  if (i % 7 == 0) e.note = "note " + std::to_string(i);
  if (i % 11 == 0) e.tags = {{"k", "v" + std::to_string(i)}};
  return e;
}

class SpoolTest : public ::testing::Test {
 protected:
  test::TempDir dir;
  std::shared_ptr<postwatch::test::CapturedLog> log_text_sink = std::make_shared<postwatch::test::CapturedLog>();
  postwatch::test::CapturedLog& log_text = *log_text_sink;
  std::shared_ptr<spdlog::logger> log = std::make_shared<spdlog::logger>("spool", log_text_sink);

  SpoolOptions options() {
    SpoolOptions o;
    o.dir = dir.path() / "spool";
    o.segment_bytes = 16 * 1024;
    o.fsync = FsyncPolicy::Never;
    return o;
  }
  std::vector<IndicatorEvent> read_all(SpoolStore& s, std::uint64_t from = 0) {
    std::vector<IndicatorEvent> out;
    while (s.read(out.empty() ? from : out.back().seq + 1, 100, out) > 0) {
    }
    return out;
  }
  std::vector<fs::path> segments() {
    std::vector<fs::path> v;
    for (auto& e : fs::directory_iterator(dir.path() / "spool"))
      if (e.path().extension() == ".seg") v.push_back(e.path());
    std::sort(v.begin(), v.end());
    return v;
  }
};

}  // namespace

TEST(SpoolRecord, RoundTripAndCorruptionDetected) {
  std::string buf;
  auto e = event(77);
  e.seq = 42;
  encode_record(e, buf);
  IndicatorEvent out;
  std::size_t used = 0;
  ASSERT_EQ(decode_record(buf, out, used), RecordStatus::Ok);
  EXPECT_EQ(used, buf.size());
  EXPECT_EQ(out.seq, 42u);
  EXPECT_EQ(out.note, e.note);
  EXPECT_EQ(out.tags, e.tags);
  EXPECT_EQ(decode_record(std::string_view(buf).substr(0, buf.size() - 1), out, used), RecordStatus::NeedMore);
  for (std::size_t i = kRecordHeaderBytes; i < buf.size(); ++i) {
    std::string bad = buf;
    bad[i] ^= 0x5A;
    EXPECT_EQ(decode_record(bad, out, used), RecordStatus::Corrupt) << "byte " << i;
  }
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);  // the CRC-32C check value
}

TEST(SpoolRecord, KeepsTheCatalogueVersionAndReadsRecordsWrittenWithoutIt) {
  auto e = event(5);
  e.catalogue_version = 3;
  std::string body;
  encode_body(e, body);
  IndicatorEvent out;
  ASSERT_EQ(decode_body(body, out), RecordStatus::Ok);
  EXPECT_EQ(out.catalogue_version, 3u);
  // A spool written before the version was kept: the body ends after the tags.
  ASSERT_EQ(decode_body(std::string_view(body).substr(0, body.size() - 4), out), RecordStatus::Ok);
  EXPECT_EQ(out.catalogue_version, 0u);
  EXPECT_EQ(out.indicator, e.indicator);
  // Anything else after the tags is corruption, not a version.
  EXPECT_EQ(decode_body(std::string_view(body).substr(0, body.size() - 1), out), RecordStatus::Corrupt);
  EXPECT_EQ(decode_body(body + "x", out), RecordStatus::Corrupt);
  // Version 0 ("not said") is written as an old record is, so every record reads back the same
  // bytes; four zero bytes after the tags were never written, so they are corruption.
  e.catalogue_version = 0;
  std::string unversioned;
  encode_body(e, unversioned);
  EXPECT_EQ(unversioned, body.substr(0, body.size() - 4));
  EXPECT_EQ(decode_body(unversioned + std::string(4, '\0'), out), RecordStatus::Corrupt);
}

TEST_F(SpoolTest, AppendsReadsInOrderAndReleases) {
  SpoolStore s(options(), log);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(s.append(event(i)), static_cast<std::uint64_t>(i + 1));
  EXPECT_GT(segments().size(), 2u);  // rotated across segments
  auto all = read_all(s);
  ASSERT_EQ(all.size(), 1000u);
  for (std::size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i].seq, i + 1);
  EXPECT_EQ(s.stats().events, 1000u);
  s.release_through(600);
  EXPECT_EQ(s.stats().events, 400u);
  EXPECT_EQ(s.first_seq(), 601u);
  auto rest = read_all(s, 1);  // reads never go below what was released
  ASSERT_EQ(rest.size(), 400u);
  EXPECT_EQ(rest.front().seq, 601u);
  s.release_through(1000);
  EXPECT_EQ(s.stats().events, 0u);
  EXPECT_EQ(s.first_seq(), 1001u);
  EXPECT_LE(segments().size(), 1u);  // settled segments are deleted
}

TEST_F(SpoolTest, SurvivesRestartAndSequenceContinues) {
  {
    SpoolStore s(options(), log);
    for (int i = 0; i < 300; ++i) s.append(event(i));
    s.release_through(100);
  }
  {
    SpoolStore s(options(), log);
    EXPECT_EQ(s.recovery().events, 200u);
    EXPECT_EQ(s.first_seq(), 101u);
    EXPECT_EQ(s.append(event(1)), 301u);
    auto all = read_all(s);
    ASSERT_EQ(all.size(), 201u);
    EXPECT_EQ(all.front().seq, 101u);
    EXPECT_EQ(all.back().seq, 301u);
    s.release_through(301);
  }
  SpoolStore s(options(), log);  // everything delivered: the position file keeps the sequence
  EXPECT_EQ(s.stats().events, 0u);
  EXPECT_EQ(s.append(event(2)), 302u);
}

TEST_F(SpoolTest, TornTailIsCutAndEverythingBeforeKept) {
  {
    SpoolStore s(options(), log);
    for (int i = 0; i < 50; ++i) s.append(event(i));
  }
  auto seg = segments().back();
  auto size = fs::file_size(seg);
  fs::resize_file(seg, size - 5);  // power lost in the middle of the last record
  SpoolStore s(options(), log);
  EXPECT_EQ(s.recovery().corrupt_tails, 1u);
  EXPECT_EQ(s.stats().events, 49u);
  EXPECT_NE(log_text.str().find("torn record"), std::string::npos) << log_text.str();
  auto all = read_all(s);
  ASSERT_EQ(all.size(), 49u);
  EXPECT_EQ(all.back().seq, 49u);
  // Never reuse a seq: 50 may have reached the broker before the crash.
  EXPECT_EQ(s.append(event(0)), 51u);
}

TEST_F(SpoolTest, CorruptRecordInTheMiddleKeepsThePrefix) {
  {
    SpoolStore s(options(), log);
    for (int i = 0; i < 20; ++i) s.append(event(i));
  }
  auto seg = segments().front();
  std::fstream f(seg, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(fs::file_size(seg) / 2));
  f.put('\xFF').put('\x00').put('\x13');
  f.close();
  SpoolStore s(options(), log);
  EXPECT_EQ(s.recovery().corrupt_tails, 1u);
  auto all = read_all(s);
  EXPECT_GT(all.size(), 5u);
  EXPECT_LT(all.size(), 20u);
  for (std::size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i].seq, i + 1);
  EXPECT_NE(log_text.str().find("corrupt record"), std::string::npos);
}

TEST_F(SpoolTest, RefusePolicyRejectsWhenFull) {
  auto o = options();
  o.max_bytes = 64 * 1024;
  SpoolStore s(o, log);
  std::uint64_t accepted = 0;
  try {
    for (int i = 0; i < 100000; ++i) {
      s.append(event(i));
      ++accepted;
    }
    FAIL() << "never refused";
  } catch (const BacklogRefused& e) {
    EXPECT_NE(std::string(e.what()).find("spool full"), std::string::npos);
  }
  EXPECT_GT(accepted, 100u);
  EXPECT_EQ(s.stats().events, accepted);
  EXPECT_EQ(s.stats().dropped, 0u);
  EXPECT_LE(s.stats().bytes, o.max_bytes);
  s.release_through(accepted / 2);  // the broker came back: room again
  EXPECT_NO_THROW(s.append(event(1)));
}

TEST_F(SpoolTest, DropOldestPolicyCountsEveryDrop) {
  auto o = options();
  o.max_bytes = 64 * 1024;
  o.overflow = OverflowPolicy::DropOldest;
  SpoolStore s(o, log);
  const int n = 5000;
  for (int i = 0; i < n; ++i) s.append(event(i));
  auto st = s.stats();
  EXPECT_GT(st.dropped, 0u);
  EXPECT_EQ(st.events + st.dropped, static_cast<std::uint64_t>(n));  // counts reconcile exactly
  EXPECT_LE(st.bytes, o.max_bytes);
  auto all = read_all(s);
  EXPECT_EQ(all.size(), st.events);
  EXPECT_EQ(all.back().seq, static_cast<std::uint64_t>(n));
  EXPECT_EQ(all.front().seq, st.dropped + 1);  // the oldest went first
}

TEST_F(SpoolTest, DropOldestNonUrgentKeepsTheUrgentEventsOfWhatItDrops) {
  auto o = options();
  o.max_bytes = 64 * 1024;
  o.overflow = OverflowPolicy::DropOldestNonUrgent;
  o.urgent = [](const IndicatorEvent& e) { return e.note == "urgent"; };
  SpoolStore s(o, log);
  const int n = 5000;
  int urgent = 0;
  for (int i = 0; i < n; ++i) {
    auto e = event(i);
    if (i % 100 == 3) {
      e.note = "urgent";
      e.observed_at_ms = i;  // tells them apart after they move
      ++urgent;
    }
    s.append(std::move(e));
  }
  auto st = s.stats();
  EXPECT_GT(st.dropped, 0u);
  EXPECT_LE(st.bytes, o.max_bytes) << "the byte quota holds";
  auto all = read_all(s);
  EXPECT_EQ(all.size(), st.events);
  // Every urgent event is still there (some under new seqs at the end); only others were dropped.
  std::set<std::int64_t> kept;
  for (const auto& e : all)
    if (e.note == "urgent") kept.insert(e.observed_at_ms);
  EXPECT_EQ(kept.size(), static_cast<std::size_t>(urgent));
  EXPECT_EQ(st.events, all.size());
  EXPECT_EQ(st.events + st.dropped, static_cast<std::uint64_t>(n))
      << "drops are counted exactly, the carried over are not";
  for (std::size_t i = 1; i < all.size(); ++i) ASSERT_LT(all[i - 1].seq, all[i].seq);
}

TEST_F(SpoolTest, AnEventBoundHoldsBesideTheByteBoundUnderEachPolicy) {
  auto o = options();
  o.max_events = 300;  // far below what max_bytes allows
  {
    SpoolStore s(o, log);
    for (int i = 0; i < 300; ++i) s.append(event(i));
    try {
      s.append(event(300));
      FAIL() << "the 301st event was accepted";
    } catch (const BacklogRefused& e) {
      EXPECT_NE(std::string(e.what()).find("spool full (300 of 300 events"), std::string::npos) << e.what();
    }
    EXPECT_EQ(s.stats().events, 300u);
    EXPECT_EQ(s.stats().dropped, 0u) << "refuse drops nothing";
    s.release_through(100);
    EXPECT_NO_THROW(s.append(event(301))) << "released events make room";
  }
  fs::remove_all(o.dir);
  o.overflow = OverflowPolicy::DropOldest;
  SpoolStore s(o, log);
  for (int i = 0; i < 2000; ++i) s.append(event(i));
  const auto st = s.stats();
  EXPECT_LE(st.events, 300u);
  EXPECT_GT(st.dropped, 0u);
  EXPECT_EQ(st.events + st.dropped, 2000u) << "every drop is counted";
}

TEST_F(SpoolTest, DropOldestNonUrgentDropsASegmentOfNothingButUrgentEvents) {
  auto o = options();
  o.max_bytes = 64 * 1024;
  o.overflow = OverflowPolicy::DropOldestNonUrgent;
  o.urgent = [](const IndicatorEvent&) { return true; };
  SpoolStore s(o, log);
  for (int i = 0; i < 5000; ++i) s.append(event(i));  // terminates: the quota wins over urgency
  auto st = s.stats();
  EXPECT_GT(st.dropped, 0u);
  EXPECT_LE(st.bytes, o.max_bytes);
  EXPECT_EQ(st.events + st.dropped, 5000u);
}

TEST_F(SpoolTest, OneProcessPerSpool) {
  SpoolStore first(options(), log);
  try {
    SpoolStore second(options(), log);
    FAIL() << "second opener was not refused";
  } catch (const BacklogRefused& e) {
    EXPECT_NE(std::string(e.what()).find("in use by another"), std::string::npos);
  }
}

TEST_F(SpoolTest, WriteFailureRefusesAndKeepsTheSpoolIntact) {
  SpoolStore s(options(), log);
  for (int i = 0; i < 10; ++i) s.append(event(i));
  // A file-size limit makes the next write fail as a full disk would.
  std::signal(SIGXFSZ, SIG_IGN);
  rlimit old{};
  ::getrlimit(RLIMIT_FSIZE, &old);
  rlimit tiny = old;
  tiny.rlim_cur = fs::file_size(segments().back()) + 10;
  ::setrlimit(RLIMIT_FSIZE, &tiny);
  bool refused = false;
  try {
    for (int i = 0; i < 10; ++i) s.append(event(i));
  } catch (const BacklogRefused& e) {
    refused = true;
    EXPECT_NE(std::string(e.what()).find("spool write failed"), std::string::npos) << e.what();
  }
  ::setrlimit(RLIMIT_FSIZE, &old);
  EXPECT_TRUE(refused);
  EXPECT_EQ(s.stats().events, 10u);
  EXPECT_EQ(s.append(event(1)), 11u);  // works again once space is back
  EXPECT_EQ(read_all(s).size(), 11u);
}
