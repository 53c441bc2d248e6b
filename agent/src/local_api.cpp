#include "postwatch/agent/local_api.hpp"

#include "postwatch/agent/event_file.hpp"

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <stdexcept>

namespace postwatch::agent {
using nlohmann::json;

namespace {

constexpr std::size_t kMaxRequestBytes = std::size_t{16} * 1024 * 1024;
constexpr std::size_t kMaxClients = 64;

sockaddr_un socket_address(const std::filesystem::path& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.string().size() >= sizeof addr.sun_path)
    throw std::runtime_error("local_api.socket: path " + path.string() + " is longer than " +
                             std::to_string(sizeof addr.sun_path - 1) + " bytes");
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  return addr;
}

bool send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

json refused(std::string why) { return json{{"accepted", false}, {"error", std::move(why)}}; }

}  // namespace

LocalApiServer::LocalApiServer(LocalApiConfig config, std::shared_ptr<const IndicatorCatalogue> catalogue,
                               EventSink sink, std::shared_ptr<spdlog::logger> log)
    : config_(std::move(config)), catalogue_(std::move(catalogue)), sink_(std::move(sink)), log_(std::move(log)) {}

LocalApiServer::~LocalApiServer() { LocalApiServer::stop(); }

std::string LocalApiServer::answer(std::string_view request) {
  json req = json::parse(request, nullptr, false);
  json results = json::array();
  if (req.is_discarded())
    return json{{"error", "not valid JSON: send one event object or an array of them per line"}, {"results", results}}
        .dump();
  if (!req.is_array()) req = json::array({std::move(req)});
  if (req.size() > config_.max_batch_events)
    return json{{"error", "batch of " + std::to_string(req.size()) + " events is larger than " +
                              std::to_string(config_.max_batch_events) + " (local_api.max_batch_events)"},
                {"results", results}}
        .dump();
  for (const auto& item : req) {
    IndicatorEvent ev;
    std::string err = parse_checked_event_json(item.dump(), *catalogue_, ev);
    if (!err.empty()) {
      results.push_back(refused(std::move(err)));
      continue;
    }
    SubmitResult r = sink_(std::move(ev));
    if (r.accepted)
      results.push_back(json{{"accepted", true}, {"seq", r.seq}});
    else
      results.push_back(refused(r.error));
  }
  // replace: an error quoting the request must never make the answer itself throw
  return json{{"results", std::move(results)}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

void LocalApiServer::start() {
  std::error_code ec;
  auto dir = config_.socket.parent_path();
  if (!dir.empty()) std::filesystem::create_directories(dir, ec);
  struct stat st {};
  if (::lstat(config_.socket.c_str(), &st) == 0) {
    // A socket left by a crashed agent is replaced; anything else at the path is not ours to delete.
    if (!S_ISSOCK(st.st_mode))
      throw std::runtime_error("local_api.socket: " + config_.socket.string() + " exists and is not a socket");
    ::unlink(config_.socket.c_str());
  }
  auto addr = socket_address(config_.socket);
  listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) throw std::runtime_error(std::string("local_api: socket(): ") + std::strerror(errno));
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listen_fd_, 16) != 0) {
    std::string why = std::strerror(errno);
    ::close(listen_fd_);
    listen_fd_ = -1;
    throw std::runtime_error("local_api.socket: cannot listen on " + config_.socket.string() + ": " + why);
  }
  ::chmod(config_.socket.c_str(), config_.mode);  // whatever the umask: the mode says who may connect
  if (::pipe2(wake_pipe_, O_CLOEXEC) != 0) throw std::runtime_error("local_api: pipe2() failed");
  stopping_ = false;
  thread_ = std::thread([this] { serve(); });
  log_->info("local API listening on {} (mode {:04o})", config_.socket.string(), config_.mode);
}

void LocalApiServer::stop() {
  if (!thread_.joinable()) return;
  stopping_ = true;
  char b = 1;
  [[maybe_unused]] auto n = ::write(wake_pipe_[1], &b, 1);
  thread_.join();
  ::close(listen_fd_);
  ::close(wake_pipe_[0]);
  ::close(wake_pipe_[1]);
  listen_fd_ = wake_pipe_[0] = wake_pipe_[1] = -1;
  ::unlink(config_.socket.c_str());
}

// One thread, poll() over the listening socket and every client: requests are short, and a
// client that sends half a line holds only its own buffer.
void LocalApiServer::serve() {
  std::map<int, std::string> clients;  // fd → bytes received but not yet a whole line
  auto drop = [&](int fd) {
    ::close(fd);
    clients.erase(fd);
  };
  while (!stopping_) {
    std::vector<pollfd> fds{{wake_pipe_[0], POLLIN, 0}, {listen_fd_, POLLIN, 0}};
    for (const auto& [fd, _] : clients) fds.push_back({fd, POLLIN, 0});
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      log_->error("local API: poll(): {}", std::strerror(errno));
      break;
    }
    if (fds[0].revents) break;
    if (fds[1].revents & POLLIN) {
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0) {
        if (clients.size() >= kMaxClients) {
          send_all(fd, R"({"error":"too many local API clients","results":[]})"
                       "\n");
          ::close(fd);
        } else {
          timeval tv{5, 0};  // a client that stops reading its answers cannot hold the server
          ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
          clients.emplace(fd, std::string());
        }
      }
    }
    for (std::size_t i = 2; i < fds.size(); ++i) {
      if (!fds[i].revents) continue;
      int fd = fds[i].fd;
      char buf[65536];
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) {
        drop(fd);
        continue;
      }
      auto& pending = clients[fd];
      pending.append(buf, static_cast<std::size_t>(n));
      bool ok = true;
      for (auto nl = pending.find('\n'); ok && nl != std::string::npos; nl = pending.find('\n')) {
        std::string line = pending.substr(0, nl);
        pending.erase(0, nl + 1);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.find_first_not_of(" \t") == std::string::npos) continue;
        ok = send_all(fd, answer(line) + "\n");
      }
      if (ok && pending.size() > kMaxRequestBytes) {
        send_all(fd, R"({"error":"request line longer than 16 MiB","results":[]})"
                     "\n");
        ok = false;
      }
      if (!ok) drop(fd);
    }
  }
  for (const auto& [fd, _] : clients) ::close(fd);
}

std::string local_api_request(const std::filesystem::path& socket, const std::string& request,
                              std::chrono::milliseconds timeout) {
  auto addr = socket_address(socket);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(std::string("socket(): ") + std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    throw std::runtime_error("cannot connect to " + socket.string() + ": " + std::strerror(errno) +
                             " (is the agent running with a local_api section?)");
  if (!send_all(fd, request + "\n"))
    throw std::runtime_error("cannot send to " + socket.string() + ": " + std::strerror(errno));
  std::string answer;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (answer.find('\n') == std::string::npos) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) throw std::runtime_error("no answer from " + socket.string() + " in time");
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char buf[65536];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) throw std::runtime_error(socket.string() + " closed the connection without an answer");
    answer.append(buf, static_cast<std::size_t>(n));
  }
  return answer.substr(0, answer.find('\n'));
}

}  // namespace postwatch::agent
