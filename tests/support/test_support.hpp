// Helpers for tests against real processes: a Mosquitto broker on a free
// loopback port, child processes, deadline polling and a tiny HTTP client.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace postwatch {
class IndicatorCatalogue;
}

namespace postwatch::test {

// A free TCP port on 127.0.0.1, below the kernel's ephemeral range and held by no other test
// process (test_support.cpp says why).
unsigned short free_port();
bool port_accepts(unsigned short port);
// A TCP connection to 127.0.0.1:port (blocking); -1 if refused. The caller closes it.
int connect_loopback(unsigned short port);
// A TCP socket listening on 127.0.0.1 at a port the kernel picks (written to `port`); throws
// naming `who` when it cannot. For the loopback relays tests put between a client and a broker.
int listen_loopback(unsigned short& port, const char* who);
// Writes all of `data` (no SIGPIPE); false when the peer is gone.
bool send_all(int fd, const char* data, std::size_t n);

// Polls `pred` until true or the deadline passes: the tests' only way to wait.
bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
                std::chrono::milliseconds interval = std::chrono::milliseconds(20));

// A fresh directory under the system temp dir, removed on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// A child process; killed (SIGKILL) on destruction if still running.
class ChildProcess {
 public:
  // With `pipe_stdin` the test writes the child's standard input.
  ChildProcess(std::vector<std::string> argv, const std::filesystem::path& log_file, bool pipe_stdin = false);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  int pid() const { return pid_; }
  bool running();
  void signal(int sig);
  bool write_stdin(const std::string& text);
  void close_stdin();
  // Waits for exit; returns the exit status (128+signal when killed), -1 on timeout.
  int wait(std::chrono::milliseconds timeout);
  std::string log() const;

 private:
  int pid_ = -1;
  int status_ = -1;
  int stdin_fd_ = -1;
  std::filesystem::path log_;
};

// Mosquitto on 127.0.0.1:<free port>, stopped on destruction. With `persistent`
// it keeps sessions and queued messages across stop()/start(), as production does.
class MosquittoBroker {
 public:
  explicit MosquittoBroker(const std::string& extra_config = "", bool persistent = false);
  ~MosquittoBroker();
  unsigned short port() const { return port_; }
  std::string uri() const { return "tcp://127.0.0.1:" + std::to_string(port_); }
  // Where a persistent broker saves sessions and queued messages (written on each autosave).
  std::filesystem::path persistence_file() const { return dir_.path() / "mosquitto.db"; }
  void stop();
  // SIGKILL, as a crash or the OOM killer would: a persistent broker keeps only what its
  // last autosave wrote (autosave_interval 1 here). start() brings it back on the same port.
  void kill();
  void start();  // again, on the same port
  std::string log() const;

 private:
  TempDir dir_;
  unsigned short port_;
  std::string extra_;
  bool persistent_;
  std::unique_ptr<ChildProcess> proc_;
};

struct HttpResult {
  int status = 0;  // 0 when the request failed
  std::string body;
};
HttpResult http_get(unsigned short port, const std::string& target);

// A command's exit status (128 + signal when killed, -1 when it did not run or end in time) and
// its stdout and stderr together.
struct CommandResult {
  int status = -1;
  std::string output;
};
// Runs `command` through /bin/sh and waits for it.
CommandResult run_shell(const std::string& command);
// `s` single-quoted for /bin/sh.
std::string shell_quoted(const std::string& s);

std::filesystem::path catalogue_path();
// The shipped catalogue (catalogue_path()), loaded once per test program.
const IndicatorCatalogue& shipped_catalogue();
// The build tree (PROJECT_BINARY_DIR) and the source tree this build was configured from.
std::filesystem::path binary_dir();
std::filesystem::path source_dir();

}  // namespace postwatch::test
