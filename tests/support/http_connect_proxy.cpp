#include "support/http_connect_proxy.hpp"

#include "support/test_support.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <stdexcept>

namespace postwatch::test {
namespace {

bool reply(int fd, const std::string& status) {
  const std::string r = "HTTP/1.1 " + status + "\r\n\r\n";
  return send_all(fd, r.data(), r.size());
}

}  // namespace

HttpConnectProxy::HttpConnectProxy(std::set<unsigned short> allowed_ports) : allowed_(std::move(allowed_ports)) {
  listen_fd_ = listen_loopback(port_, "HttpConnectProxy");
  if (::pipe(wake_) != 0) throw std::runtime_error("HttpConnectProxy: pipe failed");
  thread_ = std::thread([this] { run(); });
}

HttpConnectProxy::~HttpConnectProxy() {
  stop_ = true;
  (void)!::write(wake_[1], "x", 1);
  thread_.join();
  for (auto& p : pairs_) {
    ::close(p.client);
    if (p.upstream >= 0) ::close(p.upstream);
  }
  ::close(listen_fd_);
  ::close(wake_[0]);
  ::close(wake_[1]);
}

std::vector<std::string> HttpConnectProxy::tunnels() const {
  std::lock_guard lk(mu_);
  return tunnels_;
}

bool HttpConnectProxy::open_tunnel(Pair& p) {
  const auto end = p.header.find("\r\n\r\n");
  if (end == std::string::npos) return p.header.size() < 8192;  // wait for the rest
  const std::string line = p.header.substr(0, p.header.find("\r\n"));
  // CONNECT host:port HTTP/1.1
  if (!line.starts_with("CONNECT ")) {
    reply(p.client, "405 Method Not Allowed");
    return false;
  }
  const std::string target = line.substr(8, line.find(' ', 8) - 8);
  const auto colon = target.rfind(':');
  const int port = colon == std::string::npos ? 0 : std::atoi(target.c_str() + colon + 1);
  if (port <= 0 || port > 65535 || (!allowed_.empty() && !allowed_.count(static_cast<unsigned short>(port)))) {
    refused_ += 1;
    reply(p.client, "403 Forbidden");
    return false;
  }
  p.upstream = connect_loopback(static_cast<unsigned short>(port));  // loopback only, whatever the host says
  if (p.upstream < 0) {
    reply(p.client, "502 Bad Gateway");
    return false;
  }
  {
    std::lock_guard lk(mu_);
    tunnels_.push_back(target);
  }
  if (!reply(p.client, "200 Connection established")) return false;
  const std::string rest = p.header.substr(end + 4);  // bytes the client sent early
  p.header.clear();
  return send_all(p.upstream, rest.data(), rest.size());
}

void HttpConnectProxy::run() {
  char buf[16384];
  while (!stop_) {
    std::vector<pollfd> fds{{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    for (auto& p : pairs_) {
      fds.push_back({p.client, POLLIN, 0});
      fds.push_back({p.upstream, static_cast<short>(p.upstream >= 0 ? POLLIN : 0), 0});
    }
    if (::poll(fds.data(), fds.size(), 500) <= 0) continue;
    if (fds[0].revents & POLLIN) {
      int c = ::accept(listen_fd_, nullptr, nullptr);
      if (c >= 0) pairs_.push_back({c, -1, {}});
    }
    std::vector<std::size_t> closed;
    for (std::size_t i = 0; i + 2 < fds.size() && i / 2 < pairs_.size(); i += 2) {
      Pair& p = pairs_[i / 2];
      bool ok = true;
      if (fds[i + 2].revents & (POLLIN | POLLHUP | POLLERR)) {
        auto n = ::recv(p.client, buf, sizeof buf, 0);
        if (n <= 0)
          ok = false;
        else if (p.upstream < 0) {
          p.header.append(buf, static_cast<std::size_t>(n));
          ok = open_tunnel(p);
        } else {
          ok = send_all(p.upstream, buf, static_cast<std::size_t>(n));
        }
      }
      if (ok && p.upstream >= 0 && (fds[i + 3].revents & (POLLIN | POLLHUP | POLLERR))) {
        auto n = ::recv(p.upstream, buf, sizeof buf, 0);
        ok = n > 0 && send_all(p.client, buf, static_cast<std::size_t>(n));
      }
      if (!ok) closed.push_back(i / 2);
    }
    for (auto it = closed.rbegin(); it != closed.rend(); ++it) {
      ::close(pairs_[*it].client);
      if (pairs_[*it].upstream >= 0) ::close(pairs_[*it].upstream);
      pairs_.erase(pairs_.begin() + static_cast<std::ptrdiff_t>(*it));
    }
  }
}

}  // namespace postwatch::test
