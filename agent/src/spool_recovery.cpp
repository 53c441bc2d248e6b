// SpoolStore at start-up: the key, the position file and what the segments on disk still hold
// (docs/agent.md, "Spool recovery at start-up"). The rest of SpoolStore is in spool_store.cpp.
#include "postwatch/agent/spool_segment.hpp"
#include "postwatch/agent/spool_store.hpp"
#include "postwatch/clock.hpp"
#include "postwatch/whole_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <fstream>

namespace postwatch::agent {
namespace fs = std::filesystem;

void SpoolStore::open_key() {
  if (opt_.key_file.empty()) return;
  bool created = false;
  try {
    key_ = std::make_shared<const SpoolKey>(SpoolKey::load_or_create(opt_.key_file, created));
  } catch (const SpoolKeyError& e) {
    throw BacklogRefused(std::string("spool.key_file: ") + e.what());
  }
  if (created)
    log_->info(
        "spool: created the spool key {} (key id {}, mode 0600); the spool is encrypted with it and cannot be "
        "read without it",
        opt_.key_file.string(), key_->id_hex());
}

std::string SpoolStore::key_id_hex() const { return key_ ? key_->id_hex() : ""; }

// The position file records what is settled (acked or dropped) and the next seq,
// so sequence numbers stay monotonic even when every segment was deleted.
void SpoolStore::persist_position(bool force) {
  if (!force && floor_ == persisted_floor_->load()) return;
  if (write_position(opt_.dir, floor_, next_seq_)) persisted_floor_->store(floor_);
  last_persist_ = std::chrono::steady_clock::now();
}

bool SpoolStore::write_position(const std::filesystem::path& dir, std::uint64_t floor, std::uint64_t next) {
  auto tmp = dir / "position.tmp";
  // write(2), not a stream: a stream's error shows only after its buffer is flushed, and an
  // empty file renamed over `position` on a full disk would restart the seqs at 1.
  const std::string text = std::to_string(floor) + " " + std::to_string(next) + "\n";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  ok = ::close(fd) == 0 && ok;
  std::error_code ec;
  if (!ok) {  // disk full: the old position stays valid, only duplicates can follow
    fs::remove(tmp, ec);
    return false;
  }
  fs::rename(tmp, dir / "position", ec);
  return !ec;
}

void SpoolStore::recover() {
  std::uint64_t saved_next = 1;
  {
    std::ifstream in(opt_.dir / "position");
    std::uint64_t f = 0, n = 0;
    if (in >> f >> n) {
      floor_ = f;
      persisted_floor_->store(f);
      saved_next = n;
    }
  }
  std::vector<fs::path> files;
  std::size_t kept_aside = 0;
  for (const auto& entry : fs::directory_iterator(opt_.dir)) {
    if (entry.path().extension() == ".seg") files.push_back(entry.path());
    if (entry.path().filename().string().find(".seg.key-") != std::string::npos) ++kept_aside;
  }
  std::sort(files.begin(), files.end());
  std::uint64_t highest = 0;
  for (const auto& path : files) {
    Segment seg;
    seg.path = path;
    std::string suffix;
    Scan scan = scan_segment(seg, suffix);
    if (scan == Scan::SetAside) {
      fs::rename(path, path.string() + suffix);
      continue;
    }
    if (scan == Scan::Discard || seg.last_seq == 0 || seg.last_seq <= floor_) {
      fs::remove(path);
      continue;
    }
    if (!segments_.empty() && seg.first_seq <= segments_.back().last_seq) {
      log_->error("spool segment {} overlaps the previous one; set aside as {}.bad", path.string(), path.string());
      fs::rename(path, path.string() + ".bad");
      continue;
    }
    if (key_ && !seg.format->sealed()) {
      recovery_.plaintext_segments += 1;
      log_->info(
          "spool segment {} is not encrypted (written with encryption off, or by an older agent); its events "
          "are delivered from it and the file is deleted once they are confirmed",
          path.string());
    }
    highest = std::max(highest, seg.last_seq);
    bytes_ += seg.bytes;
    held_ += held_in(seg);
    segments_.push_back(seg);
  }
  next_seq_ = std::max({saved_next, highest + 1, floor_ + 1});
  recovery_.segments = segments_.size();
  recovery_.events = held_;
  if (held_ > 0)
    log_->info("spool {}: recovered {} unsent event(s) in {} segment(s), seq {}..{}", opt_.dir.string(), held_,
               segments_.size(), first_seq(), next_seq_ - 1);
  if (kept_aside > 0)
    log_->warn(
        "spool {}: {} segment file(s) named *.seg.key-<id> were written under another key; they are kept, "
        "not read and not delivered",
        opt_.dir.string(), kept_aside);
}

void SpoolStore::report_cut(const Segment& seg, RecordStatus st, std::size_t off, std::size_t size) {
  const std::uint64_t kept = seg.last_seq ? seg.last_seq - seg.first_seq + 1 : 0;
  const std::string cut = fmt::format("cutting {} byte(s) after it, keeping {} event(s) before", size - off, kept);
  if (st == RecordStatus::NeedMore) {
    log_->warn("spool segment {}: torn record at byte {}; {}", seg.path.string(), off, cut);
  } else if (st == RecordStatus::Unauthentic) {
    recovery_.unauthentic += 1;
    log_->error(
        "spool segment {}: record at byte {} failed authentication: the spool was tampered with (the record "
        "is complete and its checksum intact, so this is no torn write); {}",
        seg.path.string(), off, cut);
  } else {
    log_->warn("spool segment {}: corrupt record at byte {}{}; {}", seg.path.string(), off,
               seg.format->sealed() ? " (checksum or length wrong: the file was damaged or tampered with)" : "", cut);
  }
  recovery_.corrupt_tails += 1;
  recovery_.bytes_discarded += size - off;
}

// Reads a segment's records, cutting it at the first torn, corrupt or unauthentic record:
// everything before that point is kept. A segment that cannot be read at all is discarded (no
// header) or set aside (damaged header, another key): `aside_suffix` is then its new suffix.
SpoolStore::Scan SpoolStore::scan_segment(Segment& seg, std::string& aside_suffix) {
  const std::string data = read_whole_file(seg.path).value_or(std::string{});  // unreadable: no header
  const std::string name = seg.path.string();
  auto header = SegmentFormat::parse(data, seg.format);
  if (header != HeaderStatus::Ok) {
    recovery_.corrupt_tails += 1;
    recovery_.bytes_discarded += data.size();
    if (header == HeaderStatus::NoHeader) {
      log_->warn("spool segment {} has no valid header; {} byte(s) discarded", name, data.size());
      return Scan::Discard;
    }
    aside_suffix = ".bad";
    log_->error(
        "spool segment {}: its header is damaged or was tampered with (checksum mismatch); none of its {} "
        "byte(s) can be authenticated or delivered; set aside as {}.bad",
        name, data.size(), name);
    return Scan::SetAside;
  }
  if (seg.format->sealed() && (!key_ || !seg.format->use_key(*key_))) {
    recovery_.foreign_segments += 1;
    aside_suffix = ".key-" + seg.format->key_id_hex();
    if (key_)
      log_->error(
          "spool segment {} was written under key id {}; this agent's key ({}) is {}. Its events are not "
          "delivered; the file is kept as {}{}",
          name, seg.format->key_id_hex(), opt_.key_file.string(), key_->id_hex(), name, aside_suffix);
    else
      log_->error(
          "spool segment {} is encrypted (key id {}) but spool.key_file is off; its events are not delivered; "
          "the file is kept as {}{}",
          name, seg.format->key_id_hex(), name, aside_suffix);
    return Scan::SetAside;
  }
  IndicatorEvent e;
  std::uint64_t expected = 0;
  std::size_t off = seg.format->header_bytes();
  while (off < data.size()) {
    std::size_t used = 0;
    auto st = seg.format->decode(std::string_view(data).substr(off), off, e, used);
    if (st == RecordStatus::Ok && expected != 0 && e.seq != expected) st = RecordStatus::Corrupt;
    if (st != RecordStatus::Ok) {
      report_cut(seg, st, off, data.size());
      fs::resize_file(seg.path, off);
      break;
    }
    if (seg.first_seq == 0) seg.first_seq = e.seq;
    seg.last_seq = e.seq;
    expected = e.seq + 1;
    off += used;
  }
  seg.bytes = std::min<std::uint64_t>(off, data.size());
  // After a restart the file's times stand in for when its events were appended.
  struct stat st {};
  if (::stat(seg.path.c_str(), &st) == 0) {
    seg.created_ms = std::min<std::int64_t>(static_cast<std::int64_t>(st.st_ctime) * 1000, now_utc_ms());
    seg.last_append_ms = static_cast<std::int64_t>(st.st_mtime) * 1000;
    seg.created_ms = std::min(seg.created_ms, seg.last_append_ms);
  }
  return Scan::Records;
}

}  // namespace postwatch::agent
