#include "support/test_support.hpp"

#include "postwatch/catalogue.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace postwatch::test {

namespace {
sockaddr_in loopback_address(unsigned short port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  return addr;
}

// Whether nothing is bound to `port` on loopback now (no SO_REUSEADDR: a port with a
// connection in TIME_WAIT counts as taken too).
bool bindable(unsigned short port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  auto addr = loopback_address(port);
  bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

// Holds `port` for this test process until it exits (a lock on a file named after it), so two
// tests running at once never pick the same one. A crashed process's locks go with it.
bool reserve_across_processes(unsigned short port) {
  static const std::string dir = [] {
    std::string d = "/tmp/postwatch-test-ports";
    ::mkdir(d.c_str(), 01777);
    return d;
  }();
  int fd = ::open((dir + "/" + std::to_string(port)).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
  if (fd < 0) return true;  // no shared directory: the bind check alone
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return false;
  }
  return true;  // the descriptor stays open: the lock lasts as long as the process
}

// The kernel's range for the local ports of outgoing connections.
std::pair<unsigned, unsigned> ephemeral_range() {
  std::ifstream in("/proc/sys/net/ipv4/ip_local_port_range");
  unsigned lo = 32768, hi = 60999;
  in >> lo >> hi;
  return {lo, hi};
}
}  // namespace

// A port below the kernel's ephemeral range, picked at random and free now. A port the kernel
// handed out (bind to 0) came from that range, so between our release and the server's bind
// an outgoing connection of any test could take it as its local port ("Address already in
// use", seen in CI). Never the same port twice in one test process: a fixture asking for a
// dozen ports before starting anything (a NATS cluster: four per node) could otherwise get one
// twice, and the second server to bind it would die while the first answered for it; nor one
// another test process holds.
unsigned short free_port() {
  static std::mutex mutex;
  static std::set<unsigned short> handed_out;
  static std::mt19937 pick{std::random_device{}()};
  static const auto ephemeral = ephemeral_range();
  constexpr unsigned kLowest = 10'000;
  const unsigned highest = ephemeral.first > kLowest + 1'000 ? ephemeral.first - 1 : 0;
  if (highest == 0) throw std::runtime_error("free_port: the ephemeral port range leaves no room below it");
  std::lock_guard lock(mutex);
  std::uniform_int_distribution<unsigned> in_range(kLowest, highest);
  for (int attempt = 0; attempt < 1'000; ++attempt) {
    auto port = static_cast<unsigned short>(in_range(pick));
    if (!handed_out.count(port) && bindable(port) && reserve_across_processes(port)) {
      handed_out.insert(port);
      return port;
    }
  }
  throw std::runtime_error("free_port: no free port found below the ephemeral range");
}

int connect_loopback(unsigned short port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  auto addr = loopback_address(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

int listen_loopback(unsigned short& port, const char* who) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  auto a = loopback_address(0);  // the kernel picks the port
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 16) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd);
    throw std::runtime_error(std::string(who) + ": cannot listen on loopback");
  }
  port = ntohs(a.sin_port);
  return fd;
}

bool send_all(int fd, const char* data, std::size_t n) {
  while (n > 0) {
    auto w = ::send(fd, data, n, MSG_NOSIGNAL);
    if (w <= 0) return false;
    data += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

bool port_accepts(unsigned short port) {
  int fd = connect_loopback(port);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
                std::chrono::milliseconds interval) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(interval);
  }
}

TempDir::TempDir() {
  std::random_device rd;
  path_ = std::filesystem::temp_directory_path() /
          ("postwatch-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
  std::filesystem::create_directories(path_);
  // Mosquitto started as root drops to its own user and must still write its database here.
  std::filesystem::permissions(path_, std::filesystem::perms::all);
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

ChildProcess::ChildProcess(std::vector<std::string> argv, const std::filesystem::path& log_file, bool pipe_stdin)
    : log_(log_file) {
  int fds[2] = {-1, -1};
  if (pipe_stdin && ::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  if (pipe_stdin) std::signal(SIGPIPE, SIG_IGN);  // a killed child must fail the write, not the test
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    if (pipe_stdin) ::dup2(fds[0], 0);
    int fd = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  if (pipe_stdin) {
    ::close(fds[0]);
    stdin_fd_ = fds[1];
  }
}

bool ChildProcess::write_stdin(const std::string& text) {
  const char* p = text.data();
  std::size_t n = text.size();
  while (n > 0) {
    ssize_t w = ::write(stdin_fd_, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

void ChildProcess::close_stdin() {
  if (stdin_fd_ >= 0) ::close(stdin_fd_);
  stdin_fd_ = -1;
}

ChildProcess::~ChildProcess() {
  close_stdin();
  if (running()) {
    ::kill(pid_, SIGKILL);
    wait(std::chrono::seconds(5));
  }
}

bool ChildProcess::running() {
  if (status_ != -1) return false;
  int st = 0;
  if (::waitpid(pid_, &st, WNOHANG) == pid_) {
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return false;
  }
  return true;
}

void ChildProcess::signal(int sig) {
  if (running()) ::kill(pid_, sig);
}

int ChildProcess::wait(std::chrono::milliseconds timeout) {
  wait_until([this] { return !running(); }, timeout, std::chrono::milliseconds(5));
  return status_;
}

std::string ChildProcess::log() const {
  std::ifstream in(log_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

MosquittoBroker::MosquittoBroker(const std::string& extra_config, bool persistent)
    : port_(free_port()), extra_(extra_config), persistent_(persistent) {
  start();
}

MosquittoBroker::~MosquittoBroker() { stop(); }

void MosquittoBroker::start() {
  auto conf = dir_.path() / "mosquitto.conf";
  {
    std::ofstream out(conf);
    out << "listener " << port_ << " 127.0.0.1\n";
    if (extra_.find("allow_anonymous") == std::string::npos) out << "allow_anonymous true\n";
    // Queue without limit for offline persistent sessions (the default of 1000 would drop batches).
    out << "max_queued_messages 0\n";
    if (persistent_)
      out << "persistence true\npersistence_location " << dir_.path().string() << "/\nautosave_interval 1\n";
    else
      out << "persistence false\n";
    out << extra_ << "\n";
  }
  proc_ = std::make_unique<ChildProcess>(std::vector<std::string>{"mosquitto", "-c", conf.string()},
                                         dir_.path() / "mosquitto.log");
  if (!wait_until([this] { return port_accepts(port_) || !proc_->running(); }, std::chrono::seconds(10)) ||
      !proc_->running())
    throw std::runtime_error("mosquitto did not start on port " + std::to_string(port_) + ": " + proc_->log());
}

void MosquittoBroker::stop() {
  if (!proc_) return;
  proc_->signal(SIGTERM);
  if (proc_->wait(std::chrono::seconds(5)) == -1) proc_->signal(SIGKILL);
  proc_->wait(std::chrono::seconds(5));
  proc_.reset();
}

void MosquittoBroker::kill() {
  if (!proc_) return;
  proc_->signal(SIGKILL);
  proc_->wait(std::chrono::seconds(5));
  proc_.reset();
}

std::string MosquittoBroker::log() const { return proc_ ? proc_->log() : std::string(); }

CommandResult run_shell(const std::string& command) {
  CommandResult r;
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (!p) return r;
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) r.output.append(buf, n);
  const int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r;
}

std::string shell_quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string(R"('\'')") : std::string(1, c);
  return out + "'";
}

std::filesystem::path catalogue_path() { return POSTWATCH_TEST_CATALOGUE; }
const IndicatorCatalogue& shipped_catalogue() {
  static const IndicatorCatalogue c = IndicatorCatalogue::load(catalogue_path());
  return c;
}
std::filesystem::path binary_dir() { return POSTWATCH_TEST_BINARY_DIR; }
std::filesystem::path source_dir() { return POSTWATCH_TEST_SOURCE_DIR; }

}  // namespace postwatch::test
