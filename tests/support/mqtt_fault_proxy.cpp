#include "support/mqtt_fault_proxy.hpp"

#include "support/test_support.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <limits>
#include <stdexcept>

namespace postwatch::test {
namespace {

// Length of the first whole MQTT packet in `b`; 0 while it is incomplete, SIZE_MAX if the
// remaining-length field is malformed.
std::size_t first_packet_length(const std::string& b) {
  std::size_t remaining = 0, multiplier = 1;
  for (std::size_t i = 1; i <= 4; ++i) {
    if (i >= b.size()) return 0;
    const auto c = static_cast<unsigned char>(b[i]);
    remaining += (c & 0x7f) * multiplier;
    multiplier *= 128;
    if ((c & 0x80) == 0) {
      const std::size_t total = 1 + i + remaining;
      return b.size() >= total ? total : 0;
    }
  }
  return std::numeric_limits<std::size_t>::max();
}

}  // namespace

MqttFaultProxy::MqttFaultProxy(unsigned short broker_port) : broker_port_(broker_port) {
  listen_fd_ = listen_loopback(port_, "MqttFaultProxy");
  if (::pipe(wake_) != 0) throw std::runtime_error("MqttFaultProxy: pipe failed");
  thread_ = std::thread([this] { run(); });
}

MqttFaultProxy::~MqttFaultProxy() {
  stop_ = true;
  char c = 's';
  (void)!::write(wake_[1], &c, 1);
  thread_.join();
  for (auto& p : pairs_) {
    ::close(p.client);
    ::close(p.broker);
  }
  ::close(listen_fd_);
  ::close(wake_[0]);
  ::close(wake_[1]);
}

void MqttFaultProxy::cut() {
  cut_ = true;
  char c = 'c';
  (void)!::write(wake_[1], &c, 1);
}

// Forwards every whole packet read from one side to the other, except those the faults drop.
bool MqttFaultProxy::pass(Pair& p, bool from_client) {
  const int from = from_client ? p.client : p.broker;
  const int to = from_client ? p.broker : p.client;
  std::string& buf = from_client ? p.from_client : p.from_broker;
  char chunk[65536];
  auto n = ::recv(from, chunk, sizeof chunk, 0);
  if (n <= 0) return false;
  if (from_client) bytes_from_clients_ += static_cast<std::uint64_t>(n);
  buf.append(chunk, static_cast<std::size_t>(n));
  for (;;) {
    const std::size_t len = first_packet_length(buf);
    if (len == 0) return true;
    if (len == std::numeric_limits<std::size_t>::max()) return false;
    const auto type = static_cast<unsigned char>(buf[0]) >> 4;
    const bool dup = (static_cast<unsigned char>(buf[0]) & 0x08) != 0;
    if (from_client && type == 3 && dup && refuse_resends_) {
      resends_refused_ += 1;
      return false;
    }
    const bool drop = from_client && type == 3 && drop_publishes_;
    if (drop)
      publishes_dropped_ += 1;
    else if (!send_all(to, buf.data(), len))
      return false;
    buf.erase(0, len);
  }
}

void MqttFaultProxy::run() {
  while (!stop_) {
    std::vector<pollfd> fds = {{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    for (const auto& p : pairs_) {
      fds.push_back({p.client, POLLIN, 0});
      fds.push_back({p.broker, POLLIN, 0});
    }
    if (::poll(fds.data(), fds.size(), 200) < 0) continue;
    if (fds[1].revents & POLLIN) {
      char drain[64];
      (void)!::read(wake_[0], drain, sizeof drain);
    }
    std::vector<bool> closing(pairs_.size(), cut_.exchange(false));
    for (std::size_t i = 0; i < pairs_.size(); ++i) {
      if (closing[i]) continue;
      const auto& c = fds[2 + 2 * i];
      const auto& b = fds[3 + 2 * i];
      if ((c.revents & (POLLIN | POLLHUP | POLLERR)) && !pass(pairs_[i], true)) closing[i] = true;
      if (!closing[i] && (b.revents & (POLLIN | POLLHUP | POLLERR)) && !pass(pairs_[i], false)) closing[i] = true;
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
      int b = connect_loopback(broker_port_);
      if (b < 0) {
        ::close(c);
        continue;
      }
      pairs_.push_back({c, b, {}, {}});
      connections_ += 1;
    }
  }
}

}  // namespace postwatch::test
