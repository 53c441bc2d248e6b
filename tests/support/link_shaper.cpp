#include "support/link_shaper.hpp"

#include "support/test_support.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <stdexcept>

namespace postwatch::test {
namespace {

constexpr std::size_t kSegment = 1460;

}  // namespace

LinkShaper::LinkShaper(unsigned short broker_port, LinkProfile profile) : profile_(profile), broker_port_(broker_port) {
  listen_fd_ = listen_loopback(port_, "LinkShaper");
  thread_ = std::thread([this] { run(); });
}

LinkShaper::~LinkShaper() {
  stop_ = true;
  thread_.join();
  for (auto& p : pairs_) {
    ::close(p.client);
    ::close(p.broker);
  }
  ::close(listen_fd_);
}

void LinkShaper::set_down(bool down) { down_ = down; }

// The link takes `n` bytes: each segment leaves when the link has sent what came before it (at
// the rate), and arrives half a round trip later, or a whole one later if it is "lost".
void LinkShaper::take(Pair& p, bool up, const char* data, std::size_t n, Clock::time_point now) {
  Direction& d = up ? p.up : p.down;
  std::bernoulli_distribution lost(profile_.loss);
  const auto one_way = profile_.rtt / 2;
  for (std::size_t off = 0; off < n; off += kSegment) {
    const std::size_t len = std::min(kSegment, n - off);
    const auto send_time = std::chrono::nanoseconds(len * 8 * 1'000'000'000ull / profile_.bits_per_s);
    d.link_free = std::max(d.link_free, now) + send_time;
    auto arrives = d.link_free + one_way + (lost(rng_) ? profile_.rtt : std::chrono::milliseconds(0));
    if (!d.queue.empty()) arrives = std::max(arrives, d.queue.back().arrives);  // in order, as TCP delivers
    d.queue.push_back({arrives, std::string(data + off, len)});
    d.queued += len;
  }
}

bool LinkShaper::deliver(int to, Direction& d, Clock::time_point now, bool up) {
  while (!d.queue.empty() && d.queue.front().arrives <= now) {
    const std::string& b = d.queue.front().bytes;
    std::size_t sent = 0;
    while (sent < b.size()) {
      auto w = ::send(to, b.data() + sent, b.size() - sent, MSG_NOSIGNAL);
      if (w <= 0) return false;
      sent += static_cast<std::size_t>(w);
    }
    if (up) bytes_up_ += b.size();
    d.queued -= b.size();
    d.queue.pop_front();
  }
  return true;
}

void LinkShaper::run() {
  char buf[kSegment * 4];
  while (!stop_) {
    const auto now = Clock::now();
    if (down_) {
      for (auto& p : pairs_) {
        ::close(p.client);
        ::close(p.broker);
      }
      pairs_.clear();
    }
    std::vector<pollfd> fds{{listen_fd_, POLLIN, 0}};
    auto next = now + std::chrono::milliseconds(50);
    for (auto& p : pairs_) {
      // Read only while the link's own buffer has room: beyond that the sender's socket fills.
      fds.push_back({p.client, static_cast<short>(p.up.queued < profile_.buffer_bytes ? POLLIN : 0), 0});
      fds.push_back({p.broker, static_cast<short>(p.down.queued < profile_.buffer_bytes ? POLLIN : 0), 0});
      if (!p.up.queue.empty()) next = std::min(next, p.up.queue.front().arrives);
      if (!p.down.queue.empty()) next = std::min(next, p.down.queue.front().arrives);
    }
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next - now).count();
    ::poll(fds.data(), fds.size(), static_cast<int>(std::max<long long>(0, wait)) + 1);
    const auto t = Clock::now();
    std::vector<bool> closing(pairs_.size(), false);
    for (std::size_t i = 0; i < pairs_.size(); ++i) {
      Pair& p = pairs_[i];
      for (int dir = 0; dir < 2 && !closing[i]; ++dir) {
        const pollfd& f = fds[1 + 2 * i + static_cast<std::size_t>(dir)];
        if (!(f.revents & (POLLIN | POLLHUP | POLLERR))) continue;
        auto n = ::recv(f.fd, buf, sizeof buf, 0);
        if (n <= 0)
          closing[i] = true;
        else
          take(p, dir == 0, buf, static_cast<std::size_t>(n), t);
      }
      if (!closing[i] && (!deliver(p.broker, p.up, t, true) || !deliver(p.client, p.down, t, false))) closing[i] = true;
    }
    for (std::size_t i = pairs_.size(); i-- > 0;)
      if (closing[i]) {
        ::close(pairs_[i].client);
        ::close(pairs_[i].broker);
        pairs_.erase(pairs_.begin() + static_cast<std::ptrdiff_t>(i));
      }
    if (fds[0].revents & POLLIN) {
      int c = ::accept(listen_fd_, nullptr, nullptr);
      if (c < 0) continue;
      int b = down_ ? -1 : connect_loopback(broker_port_);
      if (b < 0) {
        ::close(c);  // down: the connect fails as over a dead link
        continue;
      }
      pairs_.push_back({c, b, {}, {}});
      connections_ += 1;
    }
  }
}

}  // namespace postwatch::test
