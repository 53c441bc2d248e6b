// The spool's encryption at rest (docs/agent.md, "Encryption at rest"): the key file, sealed
// records, what tampering and damage look like at recovery and while reading, the upgrade path
// from plaintext segments, and the config's spool.key_file.
#include "postwatch/agent/spool_cipher.hpp"
#include "postwatch/agent/agent_config.hpp"
#include "postwatch/agent/spool_key.hpp"
#include "postwatch/agent/spool_segment.hpp"
#include "postwatch/agent/spool_store.hpp"
#include "support/captured_log.hpp"
#include "support/test_support.hpp"

#include <sys/stat.h>

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>

using namespace postwatch;
using namespace postwatch::agent;
namespace fs = std::filesystem;

namespace {

// What must never be readable on disk: an indicator id, a note, a text value, a tag key and value.
const std::vector<std::string> kSecrets = {"terrorism_threat_level",      "security_situation_summary",
                                           "convoy ambushed near Menaka", "curfew declared in Gao",
                                           "embassy-cable-7731",          "source-of-report"};

IndicatorEvent secret_event(int i) {
  IndicatorEvent e;
  e.observed_at_ms = 1700000000000 + i;
  if (i % 2 == 0) {
    e.indicator = "terrorism_threat_level";
    e.kind = ValueKind::Level;
    e.number = 1 + i % 5;
    e.note = "convoy ambushed near Menaka, report " + std::to_string(i);
  } else {
    e.indicator = "security_situation_summary";
    e.kind = ValueKind::Text;
    e.text = "curfew declared in Gao, day " + std::to_string(i);
  }
  e.tags = {{"source-of-report", "embassy-cable-7731"}};
  return e;
}

std::string read_bytes(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write_bytes(const fs::path& file, const std::string& data) {
  std::ofstream(file, std::ios::binary | std::ios::trunc) << data;
}

// The file offsets of a sealed segment's records.
std::vector<std::size_t> record_offsets(const std::string& data) {
  std::vector<std::size_t> out;
  for (std::size_t off = kSealedHeaderBytes; off + kRecordHeaderBytes <= data.size();) {
    std::uint32_t len = 0;
    std::memcpy(&len, data.data() + off, 4);
    if (off + kRecordHeaderBytes + len > data.size()) break;
    out.push_back(off);
    off += kRecordHeaderBytes + len;
  }
  return out;
}

// Recomputes a record's CRC32C, as someone altering the file on purpose would.
void fix_record_crc(std::string& data, std::size_t off) {
  std::uint32_t len = 0;
  std::memcpy(&len, data.data() + off, 4);
  std::uint32_t crc = crc32c(data.data() + off + kRecordHeaderBytes, len);
  std::memcpy(data.data() + off + 4, &crc, 4);
}

class EncryptedSpool : public ::testing::Test {
 protected:
  test::TempDir dir;
  std::shared_ptr<test::CapturedLog> log_sink = std::make_shared<test::CapturedLog>();
  std::shared_ptr<spdlog::logger> log = std::make_shared<spdlog::logger>("spool", log_sink);

  fs::path spool_dir() const { return dir.path() / "spool"; }
  fs::path key_file() const { return dir.path() / "spool.key"; }
  SpoolOptions options(bool encrypted = true) {
    SpoolOptions o;
    o.dir = spool_dir();
    o.segment_bytes = 16 * 1024;
    o.fsync = FsyncPolicy::Never;
    if (encrypted) o.key_file = key_file();
    return o;
  }
  void fill(int n, bool encrypted = true) {
    SpoolStore s(options(encrypted), log);
    for (int i = 0; i < n; ++i) s.append(secret_event(i));
  }
  std::vector<IndicatorEvent> read_all(SpoolStore& s) {
    std::vector<IndicatorEvent> out;
    while (s.read(out.empty() ? 0 : out.back().seq + 1, 100, out) > 0) {
    }
    return out;
  }
  std::vector<fs::path> files(const std::string& ext = ".seg") {
    std::vector<fs::path> v;
    for (auto& e : fs::directory_iterator(spool_dir()))
      if (e.path().extension() == ext) v.push_back(e.path());
    std::sort(v.begin(), v.end());
    return v;
  }
  std::string logged() { return log_sink->str(); }
};

}  // namespace

TEST(SpoolCipher, SealedRecordsRoundTripUnderBothAeads) {
  SpoolKey::Bytes bytes{};
  bytes.fill(7);
  SpoolKey key(bytes);
  for (auto aead : {SpoolAead::ChaCha20Poly1305, SpoolAead::Aes256Gcm}) {
    SpoolCipher c(key, aead, "0123456789abcdef", "header");
    std::string a, b, plain;
    c.seal("the same plaintext", 40, a);
    c.seal("the same plaintext", 40, b);
    ASSERT_EQ(a.size(), std::string("the same plaintext").size() + SpoolCipher::kOverhead);
    EXPECT_NE(a, b) << aead_name(aead) << ": a fresh nonce per record";
    EXPECT_NE(a.substr(0, SpoolCipher::kNonceBytes), b.substr(0, SpoolCipher::kNonceBytes));
    ASSERT_TRUE(c.open(a, 40, plain)) << aead_name(aead);
    EXPECT_EQ(plain, "the same plaintext");
    EXPECT_FALSE(c.open(a, 41, plain)) << "another offset";
    EXPECT_TRUE(plain.empty());
    SpoolCipher other_segment(key, aead, "fedcba9876543210", "header");
    EXPECT_FALSE(other_segment.open(a, 40, plain)) << "another segment";
    SpoolCipher other_header(key, aead, "0123456789abcdef", "HEADER");
    EXPECT_FALSE(other_header.open(a, 40, plain)) << "another header";
  }
}

TEST(SpoolCipher, EveryAlteredByteOfASealedRecordIsRefused) {
  SpoolKey::Bytes bytes{};
  bytes.fill(9);
  auto format = SegmentFormat::create(std::make_shared<const SpoolKey>(bytes));
  ASSERT_TRUE(format->sealed());
  auto e = secret_event(4);
  e.seq = 42;
  std::string body, rec;
  encode_body(e, body);
  format->encode(body, 40, rec);
  ASSERT_EQ(rec.size(), format->record_bytes(body.size()));
  IndicatorEvent out;
  std::size_t used = 0;
  ASSERT_EQ(format->decode(rec, 40, out, used), RecordStatus::Ok);
  EXPECT_EQ(used, rec.size());
  EXPECT_EQ(out.note, e.note);
  EXPECT_EQ(out.tags, e.tags);
  EXPECT_EQ(format->decode(std::string_view(rec).substr(0, rec.size() - 1), 40, out, used), RecordStatus::NeedMore);
  for (std::size_t i = kRecordHeaderBytes; i < rec.size(); ++i) {
    std::string bad = rec;
    bad[i] ^= 0x01;
    EXPECT_EQ(format->decode(bad, 40, out, used), RecordStatus::Corrupt) << "damage at byte " << i;
    fix_record_crc(bad, 0);
    EXPECT_EQ(format->decode(bad, 40, out, used), RecordStatus::Unauthentic) << "tampering at byte " << i;
  }
}

TEST(SpoolKey, CreatedOnceWithMode0600AndReloaded) {
  test::TempDir dir;
  auto file = dir.path() / "keys" / "spool.key";
  bool created = false;
  auto key = SpoolKey::load_or_create(file, created);
  EXPECT_TRUE(created);
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(fs::file_size(file), SpoolKey::kBytes);
  EXPECT_EQ(key.id_hex().size(), 2 * SpoolKey::kIdBytes);
  auto again = SpoolKey::load_or_create(file, created);
  EXPECT_FALSE(created);
  EXPECT_EQ(again.id_hex(), key.id_hex());
  EXPECT_EQ(again.bytes(), key.bytes());
  EXPECT_EQ(spool_key_file_problem(file), "");
  EXPECT_EQ(spool_key_file_problem(dir.path() / "missing.key"), "");  // the agent creates it
}

TEST(SpoolKey, ExposedOrWrongSizedKeyFileIsRefused) {
  test::TempDir dir;
  auto file = dir.path() / "spool.key";
  write_bytes(file, std::string(32, 'k'));
  fs::permissions(file, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
  auto problem = spool_key_file_problem(file);
  EXPECT_NE(problem.find(file.string() + " is readable by group (mode 0640)"), std::string::npos) << problem;
  EXPECT_NE(problem.find("chmod 600 " + file.string()), std::string::npos) << problem;
  // The spool refuses to open with it, naming the setting and the file.
  auto log = std::make_shared<spdlog::logger>("spool", std::make_shared<test::CapturedLog>());
  SpoolOptions o;
  o.dir = dir.path() / "spool";
  o.key_file = file;
  try {
    SpoolStore s(o, log);
    FAIL() << "an exposed key file was used";
  } catch (const BacklogRefused& e) {
    EXPECT_NE(std::string(e.what()).find("spool.key_file: " + file.string() + " is readable by group"),
              std::string::npos)
        << e.what();
  }
  fs::permissions(file, fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_EQ(spool_key_file_problem(file), "");
  write_bytes(file, std::string(33, 'k'));  // e.g. a trailing newline
  problem = spool_key_file_problem(file);
  EXPECT_NE(problem.find(file.string() + " holds 33 byte(s); a spool key is exactly 32 random bytes"),
            std::string::npos)
      << problem;
  EXPECT_THROW((SpoolStore{o, log}), BacklogRefused);
  EXPECT_FALSE(fs::exists(o.dir / "position"));  // refused before anything was written
}

TEST_F(EncryptedSpool, FilesOnDiskHoldNoEventContent) {
  {
    SpoolStore s(options(), log);
    for (int i = 0; i < 400; ++i) s.append(secret_event(i));
    s.release_through(10);
    EXPECT_EQ(s.key_id_hex(), SpoolKey::load(key_file()).id_hex());
    ASSERT_GT(files().size(), 2u);
    for (auto& f : files()) EXPECT_EQ(read_bytes(f).substr(0, 8), "PWSPOOL2") << f;
  }
  std::size_t searched = 0;
  for (auto& entry : fs::recursive_directory_iterator(spool_dir())) {
    if (!entry.is_regular_file()) continue;
    const std::string bytes = read_bytes(entry.path());
    searched += bytes.size();
    for (const auto& secret : kSecrets)
      EXPECT_EQ(bytes.find(secret), std::string::npos) << "'" << secret << "' in " << entry.path();
  }
  EXPECT_GT(searched, 400u * 60);
  SpoolStore s(options(), log);  // and it all reads back
  auto all = read_all(s);
  ASSERT_EQ(all.size(), 390u);
  EXPECT_EQ(all.front().seq, 11u);
  EXPECT_EQ(all[all.size() - 2].note, secret_event(398).note);
  EXPECT_EQ(all.back().text, secret_event(399).text);
  EXPECT_EQ(all.back().tags, secret_event(399).tags);
}

TEST_F(EncryptedSpool, EncryptionOffWritesPlaintextV1AsBefore) {
  fill(50, /*encrypted=*/false);
  EXPECT_FALSE(fs::exists(key_file()));
  auto data = read_bytes(files().front());
  EXPECT_EQ(data.substr(0, 8), "PWSPOOL1");
  for (const auto& secret : kSecrets) EXPECT_NE(data.find(secret), std::string::npos) << secret;
  SpoolStore s(options(false), log);
  EXPECT_EQ(read_all(s).size(), 50u);
}

TEST_F(EncryptedSpool, DamagedCiphertextIsReportedAndNotDelivered) {
  fill(20);
  ASSERT_EQ(files().size(), 1u);
  auto data = read_bytes(files().front());
  auto offs = record_offsets(data);
  ASSERT_EQ(offs.size(), 20u);
  data[offs[12] + kRecordHeaderBytes + SpoolCipher::kNonceBytes + 3] ^= 0x20;  // inside record 13's ciphertext
  write_bytes(files().front(), data);
  SpoolStore s(options(), log);
  EXPECT_EQ(s.recovery().corrupt_tails, 1u);
  EXPECT_EQ(s.recovery().unauthentic, 0u);  // the checksum caught it: damage
  EXPECT_EQ(s.recovery().bytes_discarded, data.size() - offs[12]);
  EXPECT_NE(logged().find("corrupt record at byte " + std::to_string(offs[12]) +
                          " (checksum or length wrong: the file was damaged or tampered with)"),
            std::string::npos)
      << logged();
  auto all = read_all(s);
  ASSERT_EQ(all.size(), 12u);  // 1..12, never 13 or what followed it
  EXPECT_EQ(all.back().seq, 12u);
  EXPECT_EQ(s.append(secret_event(0)), 21u);  // seqs are never reused
}

TEST_F(EncryptedSpool, TamperedRecordWithAValidChecksumFailsAuthentication) {
  fill(20);
  auto data = read_bytes(files().front());
  auto offs = record_offsets(data);
  ASSERT_EQ(offs.size(), 20u);
  data[offs[5] + kRecordHeaderBytes + SpoolCipher::kNonceBytes] ^= 0x01;  // the first ciphertext byte: seq
  fix_record_crc(data, offs[5]);
  write_bytes(files().front(), data);
  SpoolStore s(options(), log);
  EXPECT_EQ(s.recovery().corrupt_tails, 1u);
  EXPECT_EQ(s.recovery().unauthentic, 1u);
  EXPECT_NE(logged().find("record at byte " + std::to_string(offs[5]) +
                          " failed authentication: the spool was tampered with"),
            std::string::npos)
      << logged();
  auto all = read_all(s);
  ASSERT_EQ(all.size(), 5u);
  EXPECT_EQ(all.back().seq, 5u);
  EXPECT_EQ(fs::file_size(files().front()), offs[5]);  // cut there, as for any corrupt record
}

TEST_F(EncryptedSpool, RecordsSwappedWithinASegmentFailAuthentication) {
  fill(10);
  auto data = read_bytes(files().front());
  auto offs = record_offsets(data);
  ASSERT_EQ(offs.size(), 10u);
  // Two whole records of the same length (seqs 3 and 5) trade places: each is intact, but not
  // where it was sealed.
  std::size_t len = offs[3] - offs[2];
  ASSERT_EQ(offs[5] - offs[4], len);
  std::string a = data.substr(offs[2], len), b = data.substr(offs[4], len);
  data.replace(offs[2], len, b);
  data.replace(offs[4], len, a);
  write_bytes(files().front(), data);
  SpoolStore s(options(), log);
  EXPECT_EQ(s.recovery().unauthentic, 1u);
  EXPECT_EQ(read_all(s).size(), 2u);
}

TEST_F(EncryptedSpool, FlippedHeaderByteSetsTheSegmentAside) {
  {
    SpoolStore s(options(), log);
    for (int i = 0; i < 400; ++i) s.append(secret_event(i));
  }
  auto segs = files();
  ASSERT_GT(segs.size(), 2u);
  auto data = read_bytes(segs[1]);
  data[25] ^= 0x04;  // inside the segment id
  write_bytes(segs[1], data);
  SpoolStore s(options(), log);
  EXPECT_EQ(s.recovery().corrupt_tails, 1u);
  EXPECT_EQ(s.recovery().bytes_discarded, data.size());
  EXPECT_NE(logged().find("its header is damaged or was tampered with"), std::string::npos) << logged();
  EXPECT_TRUE(fs::exists(segs[1].string() + ".bad"));  // kept for whoever investigates
  EXPECT_FALSE(fs::exists(segs[1]));
  auto all = read_all(s);
  ASSERT_FALSE(all.empty());
  std::uint64_t first_lost = std::stoull(segs[1].stem().string()), first_after = std::stoull(segs[2].stem().string());
  for (const auto& e : all) EXPECT_TRUE(e.seq < first_lost || e.seq >= first_after) << e.seq;
  EXPECT_EQ(all.size(), 400u - (first_after - first_lost));
}

TEST_F(EncryptedSpool, HeaderRewrittenWithAValidChecksumAuthenticatesNothing) {
  fill(20);
  auto data = read_bytes(files().front());
  data[30] ^= 0x04;  // another segment id, and the header's CRC32C made to match
  std::uint32_t crc = crc32c(data.data(), 36);
  std::memcpy(data.data() + 36, &crc, 4);
  write_bytes(files().front(), data);
  SpoolStore s(options(), log);
  EXPECT_EQ(s.recovery().unauthentic, 1u);
  EXPECT_EQ(s.recovery().events, 0u);
  EXPECT_TRUE(read_all(s).empty());
  EXPECT_NE(logged().find("failed authentication"), std::string::npos) << logged();
}

TEST_F(EncryptedSpool, TruncatedSegmentKeepsEveryWholeRecord) {
  fill(50);
  auto seg = files().back();
  fs::resize_file(seg, fs::file_size(seg) - 5);  // power lost in the middle of the last record
  {
    SpoolStore s(options(), log);
    EXPECT_EQ(s.recovery().corrupt_tails, 1u);
    EXPECT_EQ(s.recovery().unauthentic, 0u);  // a short last record is a torn write, not tampering
    EXPECT_NE(logged().find("torn record"), std::string::npos) << logged();
    auto all = read_all(s);
    ASSERT_EQ(all.size(), 49u);
    EXPECT_EQ(all.back().seq, 49u);
  }
  fs::resize_file(seg, 20);  // cut inside the 40-byte header
  SpoolStore s(options(), log);
  EXPECT_EQ(s.recovery().events, 0u);
  EXPECT_NE(logged().find("has no valid header; 20 byte(s) discarded"), std::string::npos) << logged();
  EXPECT_EQ(s.append(secret_event(1)), 51u);
}

TEST_F(EncryptedSpool, SegmentUnderAnotherKeyIsKeptAndNotDelivered) {
  fill(30);
  const auto old_id = SpoolKey::load(key_file()).id_hex();
  auto seg = files().front();
  const auto size = fs::file_size(seg);
  fs::rename(key_file(), dir.path() / "old.key");  // the key was lost or replaced
  {
    SpoolStore s(options(), log);
    const auto new_id = s.key_id_hex();
    ASSERT_NE(new_id, old_id);
    EXPECT_EQ(s.recovery().foreign_segments, 1u);
    EXPECT_EQ(s.recovery().events, 0u);
    EXPECT_TRUE(read_all(s).empty());
    EXPECT_NE(logged().find("spool segment " + seg.string() + " was written under key id " + old_id +
                            "; this agent's key (" + key_file().string() + ") is " + new_id),
              std::string::npos)
        << logged();
    EXPECT_NE(logged().find("created the spool key " + key_file().string()), std::string::npos);
    const fs::path kept = seg.string() + ".key-" + old_id;
    ASSERT_TRUE(fs::exists(kept));  // kept whole, not deleted
    EXPECT_EQ(fs::file_size(kept), size);
    EXPECT_EQ(s.append(secret_event(0)), 31u);  // the position file keeps the seqs going
  }
  SpoolStore s(options(), log);  // reminded at every start
  EXPECT_NE(logged().find("1 segment file(s) named *.seg.key-<id> were written under another key"), std::string::npos);
  EXPECT_EQ(read_all(s).size(), 1u);
}

TEST_F(EncryptedSpool, EncryptedSegmentIsKeptAsideWhenEncryptionIsTurnedOff) {
  fill(10);
  const auto id = SpoolKey::load(key_file()).id_hex();
  auto seg = files().front();
  SpoolStore s(options(/*encrypted=*/false), log);
  EXPECT_EQ(s.recovery().foreign_segments, 1u);
  EXPECT_TRUE(read_all(s).empty());
  EXPECT_NE(logged().find("is encrypted (key id " + id + ") but spool.key_file is off"), std::string::npos) << logged();
  EXPECT_TRUE(fs::exists(seg.string() + ".key-" + id));
}

TEST_F(EncryptedSpool, PlaintextV1SegmentIsDeliveredAndNewSegmentsAreSealed) {
  fill(30, /*encrypted=*/false);  // left by an agent before encryption
  auto old_seg = files().front();
  SpoolStore s(options(), log);
  EXPECT_EQ(s.recovery().plaintext_segments, 1u);
  EXPECT_EQ(s.recovery().events, 30u);
  EXPECT_NE(logged().find("spool segment " + old_seg.string() + " is not encrypted"), std::string::npos) << logged();
  EXPECT_EQ(s.append(secret_event(30)), 31u);
  auto segs = files();
  ASSERT_EQ(segs.size(), 2u);  // never appended to the old one
  EXPECT_EQ(read_bytes(segs[0]).substr(0, 8), "PWSPOOL1");
  EXPECT_EQ(read_bytes(segs[1]).substr(0, 8), "PWSPOOL2");
  auto all = read_all(s);
  ASSERT_EQ(all.size(), 31u);
  for (std::size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i].seq, i + 1);
  EXPECT_EQ(all[28].note, secret_event(28).note);
  s.release_through(30);  // confirmed: the plaintext segment goes
  EXPECT_FALSE(fs::exists(old_seg));
  EXPECT_EQ(files().size(), 1u);
}

TEST_F(EncryptedSpool, TamperingWhileRunningIsNeverDelivered) {
  SpoolStore s(options(), log);
  for (int i = 0; i < 20; ++i) s.append(secret_event(i));
  auto data = read_bytes(files().front());
  auto offs = record_offsets(data);
  data[offs[7] + kRecordHeaderBytes + 20] ^= 0x10;
  fix_record_crc(data, offs[7]);
  write_bytes(files().front(), data);
  std::vector<IndicatorEvent> out;
  s.read(1, 100, out);
  ASSERT_EQ(out.size(), 7u);
  EXPECT_EQ(out.back().seq, 7u);
  EXPECT_NE(logged().find("record failed authentication (the spool was tampered with) at byte " +
                          std::to_string(offs[7]) + " while reading"),
            std::string::npos)
      << logged();
}

TEST_F(EncryptedSpool, RestartsReleasesAndDropsWorkAsInPlaintext) {
  {
    SpoolStore s(options(), log);
    for (int i = 0; i < 1000; ++i) s.append(secret_event(i));
    s.release_through(600);
  }
  auto o = options();
  o.max_bytes = 64 * 1024;
  o.overflow = OverflowPolicy::DropOldest;
  SpoolStore s(o, log);
  EXPECT_EQ(s.recovery().events, 400u);
  EXPECT_EQ(s.first_seq(), 601u);
  for (int i = 0; i < 1000; ++i) s.append(secret_event(i));
  auto st = s.stats();
  EXPECT_GT(st.dropped, 0u);
  EXPECT_EQ(st.events + st.dropped, 1400u);
  EXPECT_LE(st.bytes, o.max_bytes);
  auto all = read_all(s);
  ASSERT_EQ(all.size(), st.events);
  EXPECT_EQ(all.back().seq, 2000u);
  EXPECT_EQ(all.back().text, secret_event(999).text);
}

TEST(SpoolKeyConfig, KeyFileDefaultsBesideTheSpoolAndAnEmptyOneTurnsEncryptionOff) {
  test::TempDir dir;
  auto file = dir.path() / "agent.json";
  auto parse = [&](const std::string& spool) {
    std::ofstream(file) << R"({"agent_id": "gw-1", "post_id": "bamako")" << spool << "}";
    return AgentConfig::load(file).spool;
  };
  EXPECT_EQ(parse("").key_file, fs::path("/var/lib/postwatch-agent/spool.key"));
  EXPECT_EQ(parse(R"(, "spool": {"dir": "data/spool/"})").key_file, dir.path() / "data" / "spool.key");
  EXPECT_EQ(parse(R"(, "spool": {"key_file": "keys/k"})").key_file, dir.path() / "keys" / "k");
  EXPECT_EQ(parse(R"(, "spool": {"key_file": ""})").key_file, fs::path());
  std::ofstream(file) << R"({"agent_id": "gw-1", "post_id": "bamako", "spool": {"key_file": 3}})";
  std::vector<ConfigProblem> problems;
  AgentConfig::parse(file, problems);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].field, "spool.key_file");
}

TEST(SpoolKeyConfig, CheckConfigChecksTheKeyFile) {
  test::TempDir dir;
  auto file = dir.path() / "agent.json";
  auto key = dir.path() / "spool.key";
  std::ofstream(file) << R"({"agent_id": "gw-1", "post_id": "bamako", "allow_plaintext": true, "catalogue_file": ")"
                      << test::catalogue_path().string() << R"(", "spool": {"dir": "spool", "key_file": "spool.key"}})";
  auto check = AgentConfig::validate(file);
  EXPECT_TRUE(check.ok()) << check.describe_all();  // missing: the agent creates it
  write_bytes(key, std::string(32, 'k'));
  fs::permissions(key, fs::perms::owner_read | fs::perms::owner_write | fs::perms::others_read);
  check = AgentConfig::validate(file);
  ASSERT_EQ(check.errors(), 1u) << check.describe_all();
  EXPECT_EQ(check.problems[0].field, "spool.key_file");
  EXPECT_NE(check.describe_all().find("spool.key_file: " + key.string() + " is readable by others (mode 0604)"),
            std::string::npos)
      << check.describe_all();
  fs::permissions(key, fs::perms::owner_read | fs::perms::owner_write);
  check = AgentConfig::validate(file);
  EXPECT_TRUE(check.ok()) << check.describe_all();
}
