// The drop directory: files of JSON lines or CSV put into it (from a USB stick, a script) are
// ingested exactly once, all or nothing (docs/agent.md, "Drop directory").
//
//   <dir>/               new files; names starting with '.' or ending in .tmp/.part are ignored
//   <dir>/processing/    a claimed file (renamed here first) and its .progress count
//   <dir>/done/          files whose every event was accepted
//   <dir>/failed/        refused files, each with <name>.reason listing every bad line
//
// A file is validated as a whole before any event is submitted: one bad line refuses the file.
// Progress (events submitted so far) is recorded after every event, so a restart resumes a
// claimed file where it stopped instead of submitting it again.
#pragma once

#include "postwatch/agent/agent_config.hpp"
#include "postwatch/agent/event_source.hpp"

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

namespace spdlog {
class logger;
}

namespace postwatch::agent {

struct DropDirectoryStats {
  std::uint64_t files_done = 0;
  std::uint64_t files_failed = 0;
  std::uint64_t events_submitted = 0;
};

class DropDirectoryWatcher : public EventSource {
 public:
  DropDirectoryWatcher(DropDirConfig config, std::shared_ptr<const IndicatorCatalogue> catalogue, EventSink sink,
                       std::shared_ptr<spdlog::logger> log);
  ~DropDirectoryWatcher() override;

  std::string_view name() const override { return "drop_dir"; }
  // Creates the directory and its subdirectories (throws std::runtime_error if it cannot).
  void start() override;
  void stop() override;

  // One pass: resumes claimed files, then claims and ingests every ready new file. Returns the
  // number of files finished (done or failed). Called by the watcher's thread; public for tests.
  std::size_t scan_once();
  DropDirectoryStats stats() const;

 private:
  // Ingests processing/<name>; false when it must be retried later (spool full).
  bool ingest_claimed(const std::filesystem::path& claimed);
  void finish(const std::filesystem::path& claimed, const std::string& subdir, const std::string& reason);

  DropDirConfig config_;
  std::shared_ptr<const IndicatorCatalogue> catalogue_;
  EventSink sink_;
  std::shared_ptr<spdlog::logger> log_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;
  DropDirectoryStats stats_;
  std::thread thread_;
};

}  // namespace postwatch::agent
