#include "chromium_pdf.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace postwatch::report_tool {

namespace fs = std::filesystem;

namespace {

// file:// URL of an absolute path, every byte outside the unreserved set and '/' escaped.
std::string file_url(const fs::path& file) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string url = "file://";
  for (unsigned char c : fs::absolute(file).string()) {
    if (std::isalnum(c) || c == '/' || c == '-' || c == '.' || c == '_' || c == '~') {
      url += static_cast<char>(c);
    } else {
      url += '%';
      url += kHex[c >> 4];
      url += kHex[c & 15];
    }
  }
  return url;
}

std::string tail_of(const fs::path& file, std::size_t bytes = 2000) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  auto text = ss.str();
  return text.size() > bytes ? "..." + text.substr(text.size() - bytes) : text;
}

// A scratch directory for Chromium's profile and output, removed when done.
class ScratchDir {
 public:
  ScratchDir() {
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl = (fs::path(tmp && *tmp ? tmp : "/tmp") / "postwatch-report-XXXXXX").string();
    if (!mkdtemp(tmpl.data()))
      throw std::runtime_error("cannot make a scratch directory: " + std::string(strerror(errno)));
    path_ = tmpl;
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

}  // namespace

fs::path find_chromium(const std::string& chromium) {
  if (chromium.find('/') != std::string::npos)
    return ::access(chromium.c_str(), X_OK) == 0 ? fs::path(chromium) : fs::path();
  const std::vector<std::string> names =
      chromium.empty() ? std::vector<std::string>{"chromium", "chromium-browser"} : std::vector{chromium};
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');)
    for (const auto& name : names) {
      auto p = fs::path(dir.empty() ? "." : dir) / name;
      if (::access(p.c_str(), X_OK) == 0) return p;
    }
  return {};
}

void print_to_pdf(const fs::path& chromium, const fs::path& html, const fs::path& pdf, std::chrono::seconds timeout) {
  ScratchDir scratch;
  const auto log = scratch.path() / "chromium.log";
  std::error_code ec;
  fs::remove(pdf, ec);  // a PDF left from an earlier run must not pass for this one
  std::vector<std::string> args{chromium.string(),
                                "--headless",
                                "--no-sandbox",
                                "--disable-gpu",
                                "--no-pdf-header-footer",
                                "--no-first-run",
                                "--disable-background-networking",
                                "--disable-component-update",
                                "--disable-sync",
                                "--disable-dev-shm-usage",
                                "--user-data-dir=" + (scratch.path() / "profile").string(),
                                "--print-to-pdf=" + fs::absolute(pdf).string(),
                                file_url(html)};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("cannot start " + chromium.string() + ": " + strerror(errno));
  if (pid == 0) {
    setpgid(0, 0);  // its own group: on a timeout, Chromium's helper processes go with it
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) {
      dup2(fd, STDOUT_FILENO);
      dup2(fd, STDERR_FILENO);
      ::close(fd);
    }
    execv(argv[0], argv.data());
    std::fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  for (;;) {
    const pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) break;
    if (done < 0 && errno != EINTR) throw std::runtime_error("waiting for Chromium: " + std::string(strerror(errno)));
    if (std::chrono::steady_clock::now() > deadline) {
      kill(-pid, SIGKILL);
      waitpid(pid, &status, 0);
      throw std::runtime_error(chromium.string() + " did not finish the PDF within " + std::to_string(timeout.count()) +
                               " s; its output:\n" + tail_of(log));
    }
    const timespec pause{0, 50'000'000};  // Chromium takes seconds; a 50 ms poll costs nothing
    nanosleep(&pause, nullptr);
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw std::runtime_error(chromium.string() + " failed (" +
                             (WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status))
                                                : "signal " + std::to_string(WTERMSIG(status))) +
                             "); its output:\n" + tail_of(log));
  if (fs::file_size(pdf, ec) == 0 || ec)
    throw std::runtime_error(chromium.string() + " exited 0 but wrote no PDF at " + pdf.string() + "; its output:\n" +
                             tail_of(log));
}

}  // namespace postwatch::report_tool
