// A thin link between an agent and its broker, on loopback (docs/performance.md, "Thin links"):
// a TCP relay that carries bytes at a set rate in each direction, delays them by half the
// round-trip time each way, models packet loss, and can go down (an outage: every connection
// is cut and new ones are refused until it comes back).
//
// In user space because the kernels this runs on may lack sch_netem (this machine's does), and
// a test must run anywhere. Loss is a model: TCP hides a lost segment behind a retransmission,
// so a "lost" 1460-byte segment here arrives one round trip late, and everything after it waits
// for it (in-order delivery), which is what a loss costs a TCP stream in time.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace postwatch::test {

struct LinkProfile {
  std::uint64_t bits_per_s = 64'000;
  std::chrono::milliseconds rtt{600};
  double loss = 0.02;  // share of 1460-byte segments that arrive a round trip late
  // Bytes the link itself holds in each direction before it stops reading from the sender (a
  // modem's or satellite terminal's buffer); the kernel's socket buffers come on top.
  std::size_t buffer_bytes = 16 * 1024;
};

class LinkShaper {
 public:
  LinkShaper(unsigned short broker_port, LinkProfile profile);
  ~LinkShaper();
  LinkShaper(const LinkShaper&) = delete;
  LinkShaper& operator=(const LinkShaper&) = delete;

  std::string uri() const { return "tcp://127.0.0.1:" + std::to_string(port_); }
  // An outage: down cuts every connection and refuses new ones until up again.
  void set_down(bool down);
  std::uint64_t bytes_up() const { return bytes_up_; }  // agent to broker, delivered
  std::uint64_t connections() const { return connections_; }

 private:
  using Clock = std::chrono::steady_clock;
  struct Chunk {
    Clock::time_point arrives;
    std::string bytes;
  };
  struct Direction {
    std::deque<Chunk> queue;
    std::size_t queued = 0;
    Clock::time_point link_free{};  // when the link finishes sending what it has taken
  };
  struct Pair {
    int client = -1, broker = -1;
    Direction up, down;
  };
  void run();
  void take(Pair& p, bool up, const char* data, std::size_t n, Clock::time_point now);
  bool deliver(int to, Direction& d, Clock::time_point now, bool up);

  LinkProfile profile_;
  unsigned short broker_port_;
  unsigned short port_ = 0;
  int listen_fd_ = -1;
  std::vector<Pair> pairs_;  // the shaper's thread only
  std::mt19937_64 rng_{20181};
  std::atomic<bool> stop_{false}, down_{false};
  std::atomic<std::uint64_t> bytes_up_{0}, connections_{0};
  std::thread thread_;
};

}  // namespace postwatch::test
