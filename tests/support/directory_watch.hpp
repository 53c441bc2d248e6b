// Watches a directory with inotify: how a test sees a file created, renamed or removed there (a
// write that failed and was cleaned up, say) without waiting for time to pass.
#pragma once

#include <sys/inotify.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>

namespace postwatch::test {

class DirectoryWatch {
 public:
  explicit DirectoryWatch(const std::filesystem::path& dir,
                          std::uint32_t mask = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_CLOSE_WRITE)
      : fd_(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) {
    if (fd_ < 0 || ::inotify_add_watch(fd_, dir.c_str(), mask) < 0)
      throw std::runtime_error("inotify on " + dir.string() + " failed");
  }
  ~DirectoryWatch() { ::close(fd_); }
  DirectoryWatch(const DirectoryWatch&) = delete;
  DirectoryWatch& operator=(const DirectoryWatch&) = delete;

  // True once an event in `mask` has named `file` since the watch began (never blocks: poll it
  // with wait_until).
  bool saw(const std::string& file, std::uint32_t mask) {
    read_pending();
    for (const auto& [name, event] : seen_)
      if (name == file && (event & mask) != 0) return true;
    return false;
  }

 private:
  void read_pending() {
    alignas(inotify_event) char buf[4096];
    for (;;) {
      ssize_t n = ::read(fd_, buf, sizeof buf);
      if (n <= 0) return;
      for (char* p = buf; p < buf + n;) {
        const auto* e = reinterpret_cast<const inotify_event*>(p);
        if (e->len > 0) seen_.emplace(e->name, e->mask & ~IN_ISDIR);
        p += sizeof(inotify_event) + e->len;
      }
    }
  }

  int fd_;
  std::set<std::pair<std::string, std::uint32_t>> seen_;
};

}  // namespace postwatch::test
