#include "postwatch/agent/line_input.hpp"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <iostream>
#include <utility>

namespace postwatch::agent {

namespace {

// Lines from a file descriptor, waiting at most 100 ms at a time so that a stop is seen.
class PollingLineReader {
 public:
  explicit PollingLineReader(int fd) : fd_(fd) {}
  // The next line without its newline; false at the end of input or once `stopped()`.
  template <typename Stopped>
  bool next(std::string& line, const Stopped& stopped) {
    for (;;) {
      if (auto nl = buf_.find('\n'); nl != std::string::npos) {
        line.assign(buf_, 0, nl);
        buf_.erase(0, nl + 1);
        return true;
      }
      if (eof_) {
        if (buf_.empty()) return false;
        line.swap(buf_);
        buf_.clear();
        return true;
      }
      if (stopped()) return false;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;  // timeout or EINTR: look at the stop again
      char chunk[16384];
      ssize_t k = ::read(fd_, chunk, sizeof chunk);
      if (k < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (k <= 0)
        eof_ = true;
      else
        buf_.append(chunk, static_cast<std::size_t>(k));
    }
  }

 private:
  int fd_;
  std::string buf_;
  bool eof_ = false;
};

}  // namespace

LineInput::LineInput(int fd, std::string label, LineSink sink, const std::atomic<bool>& stop_too)
    : fd_(fd), label_(std::move(label)), sink_(std::move(sink)), stop_too_(stop_too) {}

LineInput::~LineInput() { stop(); }

void LineInput::start() {
  if (reader_.joinable()) return;
  stopping_ = false;
  finished_ = false;
  reader_ = std::thread([this] { read_lines(); });
}

void LineInput::stop() {
  stopping_ = true;
  if (reader_.joinable()) reader_.join();
}

void LineInput::read_lines() {
  PollingLineReader lines(fd_);
  std::string line;
  std::uint64_t n = 0;
  while (lines.next(line, [this] { return stopping_ || stop_too_; })) {
    ++n;
    if (line.empty() || line[0] == '#') continue;
    if (auto err = sink_(line); !err.empty()) {
      ++rejected_;
      std::cerr << label_ << ":" << n << ": rejected: " << err << "\n";
    }
  }
  finished_ = true;
}

}  // namespace postwatch::agent
