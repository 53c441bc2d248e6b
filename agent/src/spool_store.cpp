#include "postwatch/agent/spool_store.hpp"

#include "postwatch/agent/spool_record.hpp"
#include "postwatch/clock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace postwatch::agent {
namespace fs = std::filesystem;

namespace {

constexpr std::size_t kReadChunk = std::size_t{256} * 1024;

std::string errno_text() { return std::strerror(errno); }

fs::path segment_path(const fs::path& dir, std::uint64_t first_seq) {
  char name[40];
  std::snprintf(name, sizeof name, "%020llu.seg", static_cast<unsigned long long>(first_seq));
  return dir / std::string(name);
}

bool write_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

}  // namespace

SpoolStore::SpoolStore(SpoolOptions options, std::shared_ptr<spdlog::logger> log)
    : opt_(std::move(options)), log_(std::move(log)) {
  std::error_code ec;
  fs::create_directories(opt_.dir, ec);
  if (ec) throw BacklogRefused("spool directory " + opt_.dir.string() + ": " + ec.message());
  if (::access(opt_.dir.c_str(), W_OK) != 0)
    throw BacklogRefused("spool directory " + opt_.dir.string() + " is not writable: " + errno_text());
  lock_fd_ = ::open((opt_.dir / "lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
  if (lock_fd_ < 0 || ::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    if (lock_fd_ >= 0) ::close(lock_fd_);
    throw BacklogRefused("spool directory " + opt_.dir.string() +
                         " is in use by another postwatch-agent process (one agent per spool)");
  }
  recover();
}

SpoolStore::~SpoolStore() {
  if (write_fd_ >= 0) ::fsync(write_fd_);
  close_writer();
  if (reader_fd_ >= 0) ::close(reader_fd_);
  try {
    persist_position(true);
  } catch (...) {
  }
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

// The position file records what is settled (acked or dropped) and the next seq,
// so sequence numbers stay monotonic even when every segment was deleted.
void SpoolStore::persist_position(bool force) {
  if (!force && floor_ == persisted_floor_) return;
  auto tmp = opt_.dir / "position.tmp";
  // write(2), not a stream: a stream's error shows only after its buffer is flushed, and an
  // empty file renamed over `position` on a full disk would restart the seqs at 1.
  const std::string text = std::to_string(floor_) + " " + std::to_string(next_seq_) + "\n";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return;
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  ok = ::close(fd) == 0 && ok;
  std::error_code ec;
  if (!ok) {  // disk full: the old position stays valid, only duplicates can follow
    fs::remove(tmp, ec);
    return;
  }
  fs::rename(tmp, opt_.dir / "position", ec);
  if (!ec) persisted_floor_ = floor_;
  last_persist_ = std::chrono::steady_clock::now();
}

void SpoolStore::recover() {
  std::uint64_t saved_next = 1;
  {
    std::ifstream in(opt_.dir / "position");
    std::uint64_t f = 0, n = 0;
    if (in >> f >> n) {
      floor_ = persisted_floor_ = f;
      saved_next = n;
    }
  }
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(opt_.dir))
    if (entry.path().extension() == ".seg") files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  std::uint64_t highest = 0;
  for (const auto& path : files) {
    Segment seg;
    seg.path = path;
    scan_segment(seg);
    if (seg.last_seq == 0 || seg.last_seq <= floor_) {
      fs::remove(path);
      continue;
    }
    if (!segments_.empty() && seg.first_seq <= segments_.back().last_seq) {
      log_->error("spool segment {} overlaps the previous one; set aside as {}.bad", path.string(), path.string());
      fs::rename(path, path.string() + ".bad");
      continue;
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
}

// Reads a segment's records, cutting it at the first torn or corrupt record:
// everything before that point is kept.
void SpoolStore::scan_segment(Segment& seg) {
  std::ifstream in(seg.path, std::ios::binary);
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::size_t off = kSegmentMagic.size();
  if (data.size() < off || std::string_view(data).substr(0, off) != kSegmentMagic) {
    log_->warn("spool segment {} has no valid header; {} byte(s) discarded", seg.path.string(), data.size());
    recovery_.corrupt_tails += 1;
    recovery_.bytes_discarded += data.size();
    return;
  }
  IndicatorEvent e;
  std::uint64_t expected = 0;
  while (off < data.size()) {
    std::size_t used = 0;
    auto st = decode_record(std::string_view(data).substr(off), e, used);
    if (st == RecordStatus::Ok && expected != 0 && e.seq != expected) st = RecordStatus::Corrupt;
    if (st != RecordStatus::Ok) {
      log_->warn("spool segment {}: {} record at byte {}; cutting {} byte(s) after it, keeping {} event(s) before",
                 seg.path.string(), st == RecordStatus::NeedMore ? "torn" : "corrupt", off, data.size() - off,
                 seg.last_seq ? seg.last_seq - seg.first_seq + 1 : 0);
      recovery_.corrupt_tails += 1;
      recovery_.bytes_discarded += data.size() - off;
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
}

std::uint64_t SpoolStore::held_in(const Segment& s) const {
  if (s.last_seq <= floor_) return 0;
  return s.last_seq - std::max(s.first_seq, floor_ + 1) + 1;
}

void SpoolStore::open_writer(std::uint64_t first_seq) {
  Segment seg;
  seg.path = segment_path(opt_.dir, first_seq);
  int fd = ::open(seg.path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) throw BacklogRefused("cannot create spool segment " + seg.path.string() + ": " + errno_text());
  if (!write_all(fd, kSegmentMagic.data(), kSegmentMagic.size())) {
    std::string why = errno_text();
    ::close(fd);
    fs::remove(seg.path);
    throw BacklogRefused("cannot write spool segment " + seg.path.string() + ": " + why);
  }
  seg.bytes = kSegmentMagic.size();
  seg.created_ms = seg.last_append_ms = now_utc_ms();
  bytes_ += seg.bytes;
  write_fd_ = fd;
  segments_.push_back(seg);
}

void SpoolStore::close_writer() {
  if (write_fd_ >= 0) ::close(write_fd_);
  write_fd_ = -1;
}

void SpoolStore::drop_front_segment(const char* why) {
  Segment seg = segments_.front();
  std::uint64_t lost = held_in(seg);
  std::uint64_t lost_from = std::max(seg.first_seq, floor_ + 1);
  if (write_fd_ >= 0 && segments_.size() == 1) close_writer();
  segments_.pop_front();
  fs::remove(seg.path);
  bytes_ -= seg.bytes;
  held_ -= lost;
  dropped_ += lost;
  floor_ = std::max(floor_, seg.last_seq);
  if (lost > 0) log_->warn("spool: dropped {} unsent event(s) (seq {}..{}): {}", lost, lost_from, seg.last_seq, why);
}

std::uint64_t SpoolStore::append(IndicatorEvent e) {
  e.seq = next_seq_;
  std::string rec;
  encode_record(e, rec);
  if (rec.size() - kRecordHeaderBytes > kMaxRecordBodyBytes) throw BacklogRefused("event too large for the spool");

  while (bytes_ + rec.size() > opt_.max_bytes) {
    if (opt_.overflow == OverflowPolicy::Refuse || segments_.empty() ||
        (segments_.size() == 1 && write_fd_ >= 0 && segments_.front().bytes <= kSegmentMagic.size()))
      throw BacklogRefused("spool full (" + std::to_string(bytes_) + " of " + std::to_string(opt_.max_bytes) +
                           " bytes; broker unreachable?)");
    drop_front_segment("spool full, overflow policy drop_oldest");
  }
  if (write_fd_ < 0 || segments_.empty() || segments_.back().bytes + rec.size() > opt_.segment_bytes) {
    if (write_fd_ >= 0 && opt_.fsync != FsyncPolicy::Never) ::fdatasync(write_fd_);
    close_writer();
    open_writer(e.seq);
  }
  Segment& seg = segments_.back();
  if (!write_all(write_fd_, rec.data(), rec.size())) {
    std::string why = errno_text();
    // Remove the partial record so the segment stays well-formed.
    if (::ftruncate(write_fd_, static_cast<off_t>(seg.bytes)) != 0) close_writer();
    ::lseek(write_fd_, static_cast<off_t>(seg.bytes), SEEK_SET);
    throw BacklogRefused("spool write failed: " + why);
  }
  if (opt_.fsync == FsyncPolicy::EveryRecord) {
    ::fdatasync(write_fd_);
  } else {
    unsynced_ = true;
  }
  if (seg.first_seq == 0) seg.first_seq = e.seq;
  seg.last_seq = e.seq;
  seg.last_append_ms = now_utc_ms();
  seg.bytes += rec.size();
  bytes_ += rec.size();
  held_ += 1;
  return next_seq_++;
}

std::size_t SpoolStore::read(std::uint64_t from_seq, std::size_t max, std::vector<IndicatorEvent>& out) {
  from_seq = std::max(from_seq, floor_ + 1);
  std::size_t n = 0;
  while (n < max && from_seq < next_seq_) {
    // Find the segment holding from_seq (or the first one after it).
    auto it =
        std::find_if(segments_.begin(), segments_.end(), [&](const Segment& s) { return s.last_seq >= from_seq; });
    if (it == segments_.end()) break;
    const Segment& seg = *it;
    if (reader_segment_first_ != seg.first_seq || reader_fd_ < 0 || reader_seq_ != from_seq) {
      if (reader_fd_ >= 0) ::close(reader_fd_);
      reader_fd_ = ::open(seg.path.c_str(), O_RDONLY | O_CLOEXEC);
      if (reader_fd_ < 0) {
        log_->error("cannot read spool segment {}: {}", seg.path.string(), errno_text());
        break;
      }
      reader_segment_first_ = seg.first_seq;
      reader_offset_ = kSegmentMagic.size();
      reader_seq_ = seg.first_seq;
      reader_buf_.clear();
      reader_buf_offset_ = reader_offset_;
    }
    bool advanced = false;
    while (n < max && reader_offset_ < seg.bytes) {
      std::size_t in_buf = reader_offset_ - reader_buf_offset_;
      std::string_view avail(reader_buf_);
      avail.remove_prefix(std::min(in_buf, avail.size()));
      IndicatorEvent e;
      std::size_t used = 0;
      auto st = decode_record(avail, e, used);
      if (st == RecordStatus::NeedMore) {
        std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(kReadChunk, seg.bytes - reader_offset_));
        reader_buf_.resize(want);
        ssize_t got = ::pread(reader_fd_, reader_buf_.data(), want, static_cast<off_t>(reader_offset_));
        if (got <= 0) {
          reader_buf_.clear();
          break;
        }
        reader_buf_.resize(static_cast<std::size_t>(got));
        reader_buf_offset_ = reader_offset_;
        if (decode_record(reader_buf_, e, used) == RecordStatus::NeedMore) break;
        continue;
      }
      if (st == RecordStatus::Corrupt) {
        log_->error("spool segment {}: corrupt record at byte {} while reading", seg.path.string(), reader_offset_);
        reader_offset_ = seg.bytes;
        break;
      }
      reader_offset_ += used;
      reader_seq_ = e.seq + 1;
      advanced = true;
      if (e.seq < from_seq) continue;
      from_seq = e.seq + 1;
      out.push_back(std::move(e));
      ++n;
    }
    if (reader_offset_ >= seg.bytes && seg.last_seq < next_seq_ - 1) {
      from_seq = std::max(from_seq, seg.last_seq + 1);  // continue in the next segment
      if (reader_fd_ >= 0) ::close(reader_fd_);
      reader_fd_ = -1;
    } else if (!advanced) {
      break;
    }
  }
  return n;
}

void SpoolStore::release_through(std::uint64_t seq) {
  if (seq <= floor_) return;
  seq = std::min(seq, next_seq_ - 1);
  for (const auto& s : segments_) {
    if (s.first_seq > seq) break;
    if (s.last_seq <= floor_) continue;
    std::uint64_t lo = std::max(s.first_seq, floor_ + 1), hi = std::min(s.last_seq, seq);
    if (hi >= lo) held_ -= hi - lo + 1;
  }
  floor_ = seq;
  remove_settled_segments();
}

void SpoolStore::remove_settled_segments() {
  // The active segment stays until it rotates, so appends never race a delete.
  while (segments_.size() > 1 && segments_.front().last_seq <= floor_) {
    fs::remove(segments_.front().path);
    bytes_ -= segments_.front().bytes;
    segments_.pop_front();
  }
  if (segments_.size() == 1 && write_fd_ < 0 && segments_.front().last_seq <= floor_) {
    fs::remove(segments_.front().path);
    bytes_ -= segments_.front().bytes;
    segments_.pop_front();
  }
}

std::uint64_t SpoolStore::first_seq() const { return held_ == 0 ? next_seq_ : floor_ + 1; }

BacklogStats SpoolStore::stats() const {
  BacklogStats s;
  s.events = held_;
  s.bytes = bytes_;
  s.dropped = dropped_;
  for (const auto& seg : segments_)
    if (seg.last_seq > floor_) {
      s.oldest_appended_ms = seg.created_ms;
      break;
    }
  return s;
}

void SpoolStore::clock_jumped(std::int64_t delta_ms) {
  // In memory only: after a restart the segments' file times are on whatever clock wrote them.
  for (auto& seg : segments_) {
    seg.created_ms += delta_ms;
    seg.last_append_ms += delta_ms;
  }
}

void SpoolStore::maintain(std::int64_t now_ms) {
  auto now = std::chrono::steady_clock::now();
  if (unsynced_ && write_fd_ >= 0 && opt_.fsync == FsyncPolicy::Interval && now - last_sync_ >= opt_.fsync_interval) {
    ::fdatasync(write_fd_);
    unsynced_ = false;
    last_sync_ = now;
  }
  if (opt_.max_age.count() > 0) {
    const std::int64_t limit = now_ms - std::chrono::duration_cast<std::chrono::milliseconds>(opt_.max_age).count();
    // Never the active segment: it is still being written.
    while (segments_.size() > 1 && segments_.front().last_append_ms < limit && held_in(segments_.front()) > 0)
      drop_front_segment("older than max_age");
  }
  if (now - last_persist_ >= std::chrono::seconds(1)) persist_position(false);
}

}  // namespace postwatch::agent
