#include "postwatch/agent/drop_directory.hpp"

#include "postwatch/agent/event_file.hpp"
#include "postwatch/clock.hpp"
#include "postwatch/whole_file.hpp"

#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>

namespace postwatch::agent {
namespace fs = std::filesystem;

namespace {

bool ends_with(const std::string& s, const char* suffix) {
  std::size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

// Files a copy is still writing, or that are not events at all.
bool ignored_name(const std::string& name) {
  return name.empty() || name[0] == '.' || ends_with(name, ".tmp") || ends_with(name, ".part") ||
         ends_with(name, ".progress") || ends_with(name, ".reason");
}

// `dir/name`, or `dir/stem.N.ext` if that is taken: a file dropped twice under one name is two files.
fs::path free_name(const fs::path& dir, const fs::path& name) {
  fs::path p = dir / name;
  std::error_code ec;
  for (int n = 1; fs::exists(p, ec); ++n)
    p = dir / (name.stem().string() + "." + std::to_string(n) + name.extension().string());
  return p;
}

fs::path progress_file(const fs::path& claimed) {
  fs::path p = claimed;
  p += ".progress";
  return p;
}

std::size_t read_progress(const fs::path& claimed) {
  std::ifstream in(progress_file(claimed));
  std::size_t n = 0;
  in >> n;
  return n;
}

// Written in place (fixed width) after every event, so a killed process resumes where it stopped;
// synced when the file is finished or paused.
class ProgressRecord {
 public:
  explicit ProgressRecord(const fs::path& file) : fd_(::open(file.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0640)) {}
  ~ProgressRecord() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool write(std::size_t submitted) {
    char buf[24];
    int n = std::snprintf(buf, sizeof buf, "%020zu\n", submitted);
    return fd_ >= 0 && ::pwrite(fd_, buf, static_cast<std::size_t>(n), 0) == n;
  }
  void sync() {
    if (fd_ >= 0) ::fdatasync(fd_);
  }

 private:
  int fd_;
};

}  // namespace

DropDirectoryWatcher::DropDirectoryWatcher(DropDirConfig config, std::shared_ptr<const IndicatorCatalogue> catalogue,
                                           EventSink sink, std::shared_ptr<spdlog::logger> log)
    : config_(std::move(config)), catalogue_(std::move(catalogue)), sink_(std::move(sink)), log_(std::move(log)) {}

DropDirectoryWatcher::~DropDirectoryWatcher() { DropDirectoryWatcher::stop(); }

void DropDirectoryWatcher::start() {
  std::error_code exists_ec;
  bool created = !fs::exists(config_.dir, exists_ec);
  for (const char* sub : {"", "processing", "done", "failed"}) {
    std::error_code ec;
    fs::create_directories(config_.dir / sub, ec);
    if (!fs::is_directory(config_.dir / sub))
      throw std::runtime_error("drop_dir.path: cannot create " + (config_.dir / sub).string() + ": " + ec.message());
  }
  // Post staff in the agent's group drop files here; setgid keeps the files in that group.
  if (created) ::chmod(config_.dir.c_str(), 02770);
  {
    std::lock_guard lk(mu_);
    stopping_ = false;
  }
  thread_ = std::thread([this] {
    std::unique_lock lk(mu_);
    while (!stopping_) {
      lk.unlock();
      try {
        scan_once();
      } catch (const std::exception& e) {
        log_->error("drop directory {}: {}", config_.dir.string(), e.what());
      }
      lk.lock();
      wake_.wait_for(lk, config_.poll_interval, [&] { return stopping_; });
    }
  });
  log_->info("drop directory {} polled every {} s", config_.dir.string(), config_.poll_interval.count());
}

void DropDirectoryWatcher::stop() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

DropDirectoryStats DropDirectoryWatcher::stats() const {
  std::lock_guard lk(mu_);
  return stats_;
}

std::size_t DropDirectoryWatcher::scan_once() {
  std::size_t finished = 0;
  auto processing = config_.dir / "processing";
  // Files claimed before a crash or a full spool come first, in name order.
  std::vector<fs::path> claimed;
  for (const auto& e : fs::directory_iterator(processing))
    if (e.is_regular_file() && !ignored_name(e.path().filename().string())) claimed.push_back(e.path());
  std::sort(claimed.begin(), claimed.end());
  for (const auto& c : claimed) {
    if (!ingest_claimed(c)) return finished;  // spool full: keep the order, try again next poll
    ++finished;
  }
  std::vector<fs::path> ready;
  auto now = fs::file_time_type::clock::now();
  for (const auto& e : fs::directory_iterator(config_.dir)) {
    std::error_code ec;
    if (!e.is_regular_file(ec) || ignored_name(e.path().filename().string())) continue;
    auto mtime = e.last_write_time(ec);
    if (ec || now - mtime < config_.min_age) continue;  // may still be being copied
    ready.push_back(e.path());
  }
  std::sort(ready.begin(), ready.end());
  for (const auto& file : ready) {
    {
      std::lock_guard lk(mu_);
      if (stopping_) break;
    }
    // Claim by rename: atomic within one file system, so a file is ingested by one pass only and a
    // crash leaves it in processing/, never back among the new files.
    auto target = free_name(processing, file.filename());
    std::error_code ec;
    fs::rename(file, target, ec);
    if (ec) {
      log_->error("drop directory: cannot claim {}: {}", file.string(), ec.message());
      continue;
    }
    fs::remove(progress_file(target), ec);  // a fresh claim starts at event 0, whatever an old run left
    if (!ingest_claimed(target)) break;
    ++finished;
  }
  return finished;
}

bool DropDirectoryWatcher::ingest_claimed(const fs::path& claimed) {
  auto name = claimed.filename().string();
  std::error_code ec;
  auto size = fs::file_size(claimed, ec);
  if (ec) {
    finish(claimed, "failed", "cannot read the file: " + ec.message() + "\n");
    return true;
  }
  if (size > config_.max_file_bytes) {
    finish(claimed, "failed",
           "file is " + std::to_string(size) + " bytes, more than drop_dir.max_file_bytes " +
               std::to_string(config_.max_file_bytes) + "; split it\nnothing was ingested\n");
    return true;
  }
  auto text = read_whole_file(claimed);
  if (!text) {
    finish(claimed, "failed", "cannot read the file\nnothing was ingested\n");
    return true;
  }
  ParsedEvents parsed = parse_event_lines(*text, event_file_format(claimed), *catalogue_);
  std::size_t done = read_progress(claimed);
  if (!parsed.ok() || parsed.events.empty()) {
    std::ostringstream reason;
    if (done > 0)  // the file changed after it was claimed and partly ingested
      reason << "WARNING: " << done << " event(s) of this file were ingested before it became unreadable\n";
    else
      reason << "nothing was ingested: ";
    if (parsed.events.empty() && parsed.ok())
      reason << "the file holds no events\n";
    else
      reason << parsed.errors.size() << " bad line(s); fix them and drop the whole file again\n";
    std::size_t shown = 0;
    for (const auto& e : parsed.errors) {
      if (++shown > 1000) {
        reason << "... and " << parsed.errors.size() - 1000 << " more\n";
        break;
      }
      if (e.line)
        reason << "line " << e.line << ": " << e.message << "\n";
      else
        reason << e.message << "\n";
    }
    finish(claimed, "failed", reason.str());
    return true;
  }
  if (done > parsed.events.size()) done = parsed.events.size();
  if (done > 0) log_->info("drop directory: resuming {} after {} event(s)", name, done);
  ProgressRecord progress(progress_file(claimed));
  std::size_t submitted_now = 0;
  for (std::size_t i = done; i < parsed.events.size(); ++i) {
    SubmitResult r = sink_(parsed.events[i]);
    if (!r.accepted) {
      // Validated above, so this is the spool refusing (full): keep the file claimed, resume later.
      progress.sync();
      log_->warn(
          "drop directory: {} line {}: {}; {} of {} event(s) ingested, the rest follow when the agent "
          "accepts events again",
          name, parsed.lines[i], r.error, i, parsed.events.size());
      std::lock_guard lk(mu_);
      stats_.events_submitted += submitted_now;
      return false;
    }
    ++submitted_now;
    progress.write(i + 1);
  }
  progress.sync();
  {
    std::lock_guard lk(mu_);
    stats_.events_submitted += submitted_now;
  }
  finish(claimed, "done", "");
  log_->info("drop directory: {}: {} event(s) ingested", name, parsed.events.size());
  return true;
}

void DropDirectoryWatcher::finish(const fs::path& claimed, const std::string& subdir, const std::string& reason) {
  auto target = free_name(config_.dir / subdir, claimed.filename());
  std::error_code ec;
  if (!reason.empty()) {
    auto reason_file = target;
    reason_file += ".reason";
    std::ofstream(reason_file) << "file: " << claimed.filename().string() << "\n" << reason;
  }
  fs::rename(claimed, target, ec);
  if (ec) log_->error("drop directory: cannot move {} to {}: {}", claimed.string(), target.string(), ec.message());
  fs::remove(progress_file(claimed), ec);
  std::lock_guard lk(mu_);
  if (subdir == "failed") {
    stats_.files_failed += 1;
    log_->warn("drop directory: {} refused, see {}.reason", claimed.filename().string(), target.string());
  } else {
    stats_.files_done += 1;
  }
}

}  // namespace postwatch::agent
