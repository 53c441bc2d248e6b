// The disk spool: every accepted event is appended (length + CRC32C framed, sealed with an
// AEAD when a key file is configured) to segment files before the source hears "accepted", and
// removed only once released (event_backlog.hpp: the aggregator's confirmation, or with
// delivery.confirm: broker the broker's acknowledgement). See docs/agent.md for the guarantees
// and settings.
#pragma once

#include "postwatch/agent/event_backlog.hpp"
#include "postwatch/agent/spool_cipher.hpp"
#include "postwatch/agent/spool_record.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace spdlog {
class logger;
}

namespace postwatch::agent {

class SegmentFormat;

enum class FsyncPolicy { EveryRecord, Interval, Never };
// What a full spool does with a new event (docs/agent.md, "Spool"): refuse it, or make room by
// dropping the oldest segment, or (DropOldestNonUrgent) the oldest segment's events that are not
// urgent, carrying its urgent ones over to the end of the spool under new seqs.
enum class OverflowPolicy { Refuse, DropOldest, DropOldestNonUrgent };

struct SpoolOptions {
  std::filesystem::path dir;
  std::uint64_t max_bytes = 256ull << 20;       // all segments together
  std::uint64_t max_events = 0;                 // unsent events held at once; 0: only max_bytes bounds them
  std::chrono::seconds max_age{7 * 24 * 3600};  // unsent events older than this are dropped; 0 = keep forever
  std::uint64_t segment_bytes = 4ull << 20;
  FsyncPolicy fsync = FsyncPolicy::Interval;
  std::chrono::milliseconds fsync_interval{200};
  OverflowPolicy overflow = OverflowPolicy::Refuse;
  // Which events DropOldestNonUrgent keeps (the catalogue's urgency, set by the agent's main).
  std::function<bool(const IndicatorEvent&)> urgent{};
  // Encryption at rest: records are sealed under the 32-byte key in this file, created (mode
  // 0600) when missing. Empty: plaintext segments. Config files default it to "<dir>.key"
  // (AgentConfig::parse); options built in code leave it empty.
  std::filesystem::path key_file{};
  SpoolAead aead = kDefaultSpoolAead;  // for new segments; the benchmark compares both
  // How a segment is flushed to the disk; empty: fdatasync(2). Tests and the benchmark put a
  // slow one here to stand for a slow SD card.
  std::function<int(int)> datasync{};
};

// What start-up found on disk.
struct SpoolRecovery {
  std::uint64_t segments = 0;
  std::uint64_t events = 0;         // intact events recovered that were not yet released
  std::uint64_t corrupt_tails = 0;  // segments cut at a torn, corrupt or unauthentic record, or with a bad header
  std::uint64_t bytes_discarded = 0;
  std::uint64_t unauthentic = 0;         // of those, cut at a record whose AEAD tag failed: tampering
  std::uint64_t foreign_segments = 0;    // encrypted under another key (or no key configured): set aside
  std::uint64_t plaintext_segments = 0;  // PWSPOOL1 segments read while encryption is on (upgrade)
};

class SpoolStore final : public EventBacklog {
 public:
  // Opens (creating if needed) the spool directory and recovers what it holds.
  // Throws BacklogRefused when the directory cannot be used.
  SpoolStore(SpoolOptions options, std::shared_ptr<spdlog::logger> log);
  ~SpoolStore() override;

  std::uint64_t append(IndicatorEvent e) override;
  std::size_t read(std::uint64_t from_seq, std::size_t max, std::vector<IndicatorEvent>& out) override;
  void release_through(std::uint64_t seq) override;
  std::uint64_t first_seq() const override;
  std::uint64_t next_seq() const override { return next_seq_; }
  BacklogStats stats() const override;
  // Periodic upkeep: interval fsync, the age bound, persisting the ack position. Under the
  // interval policy the fdatasyncs (of the segment being written and of segments closed since)
  // and the position file's write are the returned disk work, never done under the caller's lock.
  std::function<void()> prepare_upkeep(std::int64_t now_ms) override;
  void clock_jumped(std::int64_t delta_ms) override;

  const SpoolRecovery& recovery() const { return recovery_; }
  // The id of the key new segments are sealed under; empty when encryption is off.
  std::string key_id_hex() const;

 private:
  struct Segment {
    std::uint64_t first_seq = 0, last_seq = 0;  // contiguous: every seq in between is in the file
    std::uint64_t bytes = 0;
    std::int64_t created_ms = 0, last_append_ms = 0;  // wall clock, for the age bound
    std::filesystem::path path;
    std::shared_ptr<SegmentFormat> format;
  };
  enum class Scan { Records, Discard, SetAside };
  void open_key();
  void recover();
  Scan scan_segment(Segment& seg, std::string& aside_suffix);
  void report_cut(const Segment& seg, RecordStatus st, std::size_t off, std::size_t size);
  void open_writer(std::uint64_t first_seq);
  void close_writer();
  void drop_front_segment(const char* why);
  // DropOldestNonUrgent: drops the front segment and appends its unsent urgent events again.
  // False when it holds nothing but urgent events (then the plain policy applies).
  bool drop_front_keeping_urgent();
  // Encodes `e` under the next seq into scratch_; returns the record's size on disk.
  std::size_t encode_record(IndicatorEvent& e);
  std::uint64_t write_record(std::uint64_t seq, std::size_t size);
  void remove_settled_segments();
  void persist_position(bool force);
  // Writes "<floor> <next>" to <dir>/position through position.tmp (write, fsync, rename).
  static bool write_position(const std::filesystem::path& dir, std::uint64_t floor, std::uint64_t next);
  int datasync(int fd) const;
  std::uint64_t held_in(const Segment& s) const;

  SpoolOptions opt_;
  std::shared_ptr<spdlog::logger> log_;
  std::shared_ptr<const SpoolKey> key_;  // null: encryption off
  std::string scratch_;                  // an event's body before it is framed
  std::deque<Segment> segments_;
  int lock_fd_ = -1;  // flock on <dir>/lock: one process per spool
  int write_fd_ = -1;
  std::uint64_t next_seq_ = 1;
  std::uint64_t floor_ = 0;  // every seq <= floor_ is released or dropped
  // Written by the disk work prepare_upkeep() returns, outside the caller's lock.
  std::shared_ptr<std::atomic<std::uint64_t>> persisted_floor_ = std::make_shared<std::atomic<std::uint64_t>>(0);
  std::uint64_t held_ = 0;
  std::uint64_t bytes_ = 0;
  std::uint64_t dropped_ = 0;
  bool unsynced_ = false;
  std::vector<int> closed_unsynced_;  // segments rotated away under the interval policy: sync, then close
  std::chrono::steady_clock::time_point last_sync_{};
  std::chrono::steady_clock::time_point last_persist_{};
  SpoolRecovery recovery_;

  // Sequential reader state: where read() continues without a seek.
  std::uint64_t reader_seq_ = 0;
  std::uint64_t reader_offset_ = 0;
  std::uint64_t reader_segment_first_ = 0;
  int reader_fd_ = -1;
  std::string reader_buf_;
  std::uint64_t reader_buf_offset_ = 0;  // file offset of reader_buf_[0]
};

}  // namespace postwatch::agent
