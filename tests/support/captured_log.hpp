// A log sink the test can read while other threads (paho's, the agent's) still write to
// it: spdlog's ostream sink locks only its writes, so reading its stream raced them.
#pragma once

#include <spdlog/sinks/base_sink.h>

#include <mutex>
#include <string>

namespace postwatch::test {

class CapturedLog : public spdlog::sinks::base_sink<std::mutex> {
 public:
  std::string str() {
    std::lock_guard lk(mutex_);
    return text_;
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t line;
    formatter_->format(msg, line);
    text_.append(line.data(), line.size());
  }
  void flush_() override {}

 private:
  std::string text_;
};

}  // namespace postwatch::test
