#include "postwatch/agent/spool_store.hpp"

#include "postwatch/agent/spool_segment.hpp"
#include "postwatch/clock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>

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
  try {
    open_key();
  } catch (...) {
    ::close(lock_fd_);
    throw;
  }
  recover();
}

SpoolStore::~SpoolStore() {
  if (write_fd_ >= 0) ::fsync(write_fd_);
  close_writer();
  for (int fd : closed_unsynced_) {
    datasync(fd);
    ::close(fd);
  }
  if (reader_fd_ >= 0) ::close(reader_fd_);
  try {
    persist_position(true);
  } catch (...) {
  }
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

std::uint64_t SpoolStore::held_in(const Segment& s) const {
  if (s.last_seq <= floor_) return 0;
  return s.last_seq - std::max(s.first_seq, floor_ + 1) + 1;
}

void SpoolStore::open_writer(std::uint64_t first_seq) {
  Segment seg;
  seg.path = segment_path(opt_.dir, first_seq);
  try {
    seg.format = SegmentFormat::create(key_, opt_.aead);
  } catch (const std::exception& e) {
    throw BacklogRefused(std::string("cannot seal a new spool segment: ") + e.what());
  }
  const std::string& header = seg.format->header();
  int fd = ::open(seg.path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) throw BacklogRefused("cannot create spool segment " + seg.path.string() + ": " + errno_text());
  if (!write_all(fd, header.data(), header.size())) {
    std::string why = errno_text();
    ::close(fd);
    fs::remove(seg.path);
    throw BacklogRefused("cannot write spool segment " + seg.path.string() + ": " + why);
  }
  seg.bytes = header.size();
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

bool SpoolStore::drop_front_keeping_urgent() {
  const Segment front = segments_.front();
  std::vector<IndicatorEvent> held, urgent;
  const std::uint64_t from = std::max(front.first_seq, floor_ + 1);
  if (from <= front.last_seq) read(from, static_cast<std::size_t>(front.last_seq - from + 1), held);
  for (auto& e : held)
    if (opt_.urgent && opt_.urgent(e)) urgent.push_back(std::move(e));
  if (!urgent.empty() && urgent.size() == held.size()) return false;
  drop_front_segment("spool full, overflow policy drop_oldest_non_urgent");
  // Carried over, not lost: they leave holes the aggregator gives up as gaps (their old seqs),
  // and arrive under new ones. They go by the front segment's bytes, so this always makes room.
  dropped_ -= urgent.size();
  for (auto& e : urgent) {
    const std::size_t size = encode_record(e);
    write_record(e.seq, size);
  }
  if (!urgent.empty())
    log_->warn("spool: kept {} urgent event(s) of the dropped segment, appended again under new seqs", urgent.size());
  return true;
}

std::size_t SpoolStore::encode_record(IndicatorEvent& e) {
  e.seq = next_seq_;
  scratch_.clear();
  encode_body(e, scratch_);
  // New records go to a segment of the current format only (never to one recovered at start).
  return kRecordHeaderBytes + scratch_.size() + (key_ ? SpoolCipher::kOverhead : 0);
}

std::uint64_t SpoolStore::append(IndicatorEvent e) {
  std::size_t size = encode_record(e);
  if (scratch_.size() > kMaxRecordBodyBytes) throw BacklogRefused("event too large for the spool");

  auto full = [&] { return bytes_ + size > opt_.max_bytes || (opt_.max_events != 0 && held_ >= opt_.max_events); };
  while (full()) {
    if (opt_.overflow == OverflowPolicy::Refuse || segments_.empty() ||
        (segments_.size() == 1 && write_fd_ >= 0 &&
         segments_.front().bytes <= segments_.front().format->header_bytes()))
      throw BacklogRefused(bytes_ + size > opt_.max_bytes
                               ? "spool full (" + std::to_string(bytes_) + " of " + std::to_string(opt_.max_bytes) +
                                     " bytes; broker unreachable?)"
                               : "spool full (" + std::to_string(held_) + " of " + std::to_string(opt_.max_events) +
                                     " events; broker unreachable?)");
    if (opt_.overflow == OverflowPolicy::DropOldestNonUrgent && drop_front_keeping_urgent()) continue;
    drop_front_segment("spool full, overflow policy drop_oldest");
  }
  // Urgent events carried over took the seq it was encoded with (and scratch_).
  if (e.seq != next_seq_) size = encode_record(e);
  return write_record(e.seq, size);
}

// Writes the record encode_record() left in scratch_, in room append() has made.
std::uint64_t SpoolStore::write_record(std::uint64_t seq, std::size_t size) {
  if (write_fd_ < 0 || segments_.empty() || segments_.back().bytes + size > opt_.segment_bytes) {
    if (write_fd_ >= 0 && opt_.fsync == FsyncPolicy::Interval) {
      // Synced by the next upkeep's disk work, outside the agent's lock (as it would have been
      // within the interval had it stayed open).
      closed_unsynced_.push_back(write_fd_);
      write_fd_ = -1;
    } else if (write_fd_ >= 0 && opt_.fsync == FsyncPolicy::EveryRecord) {
      datasync(write_fd_);
    }
    close_writer();
    open_writer(seq);
  }
  Segment& seg = segments_.back();
  std::string rec;
  rec.reserve(size);
  try {
    seg.format->encode(scratch_, seg.bytes, rec);
  } catch (const std::exception& ex) {
    throw BacklogRefused(std::string("spool encryption failed: ") + ex.what());
  }
  if (!write_all(write_fd_, rec.data(), rec.size())) {
    std::string why = errno_text();
    // Remove the partial record so the segment stays well-formed.
    if (::ftruncate(write_fd_, static_cast<off_t>(seg.bytes)) != 0) close_writer();
    ::lseek(write_fd_, static_cast<off_t>(seg.bytes), SEEK_SET);
    throw BacklogRefused("spool write failed: " + why);
  }
  if (opt_.fsync == FsyncPolicy::EveryRecord) {
    datasync(write_fd_);
  } else {
    unsynced_ = true;
  }
  if (seg.first_seq == 0) seg.first_seq = seq;
  seg.last_seq = seq;
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
      reader_offset_ = seg.format->header_bytes();
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
      auto st = seg.format->decode(avail, reader_offset_, e, used);
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
        if (seg.format->decode(reader_buf_, reader_offset_, e, used) == RecordStatus::NeedMore) break;
        continue;
      }
      if (st != RecordStatus::Ok) {
        log_->error("spool segment {}: {} at byte {} while reading; the rest of the segment is skipped",
                    seg.path.string(),
                    st == RecordStatus::Unauthentic ? "record failed authentication (the spool was tampered with)"
                                                    : "corrupt record",
                    reader_offset_);
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

namespace {
// fdatasync(2), or the hook SpoolOptions::datasync puts in its place.
int flush_to_disk(const std::function<int(int)>& hook, int fd) { return hook ? hook(fd) : ::fdatasync(fd); }
}  // namespace

int SpoolStore::datasync(int fd) const { return flush_to_disk(opt_.datasync, fd); }

std::function<void()> SpoolStore::prepare_upkeep(std::int64_t now_ms) {
  auto now = std::chrono::steady_clock::now();
  // Segments rotated away, and a dup() of the one being written (syncing a copy leaves
  // write_fd_ free): each synced, then closed, outside the caller's lock.
  std::vector<int> to_flush;
  const bool pending = (unsynced_ && write_fd_ >= 0) || !closed_unsynced_.empty();
  if (opt_.fsync == FsyncPolicy::Interval && pending && now - last_sync_ >= opt_.fsync_interval) {
    to_flush.swap(closed_unsynced_);
    if (unsynced_ && write_fd_ >= 0) {
      int copy = ::dup(write_fd_);
      if (copy >= 0)
        to_flush.push_back(copy);
      else
        datasync(write_fd_);  // out of descriptors: sync here rather than not at all
    }
    unsynced_ = false;
    last_sync_ = now;
  }
  if (opt_.max_age.count() > 0) {
    const std::int64_t limit = now_ms - std::chrono::duration_cast<std::chrono::milliseconds>(opt_.max_age).count();
    // Never the active segment: it is still being written.
    while (segments_.size() > 1 && segments_.front().last_append_ms < limit && held_in(segments_.front()) > 0)
      drop_front_segment("older than max_age");
  }
  std::optional<std::pair<std::uint64_t, std::uint64_t>> position;
  if (now - last_persist_ >= std::chrono::seconds(1)) {
    if (floor_ != persisted_floor_->load()) position.emplace(floor_, next_seq_);
    last_persist_ = now;
  }
  if (to_flush.empty() && !position) return {};
  return
      [to_flush = std::move(to_flush), position, dir = opt_.dir, persisted = persisted_floor_, hook = opt_.datasync] {
        for (int fd : to_flush) {
          flush_to_disk(hook, fd);
          ::close(fd);
        }
        // A position older than the spool's by a moment is still right: it only lets a few settled
        // events be sent again after a crash, which the aggregator drops as duplicates.
        if (position && write_position(dir, position->first, position->second)) persisted->store(position->first);
      };
}

}  // namespace postwatch::agent
