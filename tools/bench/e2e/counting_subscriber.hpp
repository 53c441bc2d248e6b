// The ceiling phase's subscriber: a plain Paho client on every agent's events that only counts.
#pragma once

#include "e2e/common.hpp"
#include "postwatch/topics.hpp"

#include <mqtt/async_client.h>

#include <atomic>
#include <cstdint>
#include <string>

namespace postwatch::bench::e2e {

class CountingSubscriber {
 public:
  explicit CountingSubscriber(const std::string& uri) : client_(uri, "pw-bench-ceiling-sub") {
    client_.set_message_callback([this](mqtt::const_message_ptr m) {
      bytes_ += m->get_payload_ref().size();
      last_ns_ = steady_ns();
      messages_ += 1;
    });
    auto opts = mqtt::connect_options_builder().clean_session(true).keep_alive_interval(20s).finalize();
    client_.connect(opts)->wait();
    client_.subscribe(std::string(topics::events_filter), 1)->wait();
  }
  ~CountingSubscriber() {
    try {
      client_.disconnect(500)->wait_for(1s);
    } catch (const mqtt::exception&) {
    }
  }
  void reset() { messages_ = 0, bytes_ = 0, last_ns_ = 0; }
  std::uint64_t messages() const { return messages_; }
  std::uint64_t bytes() const { return bytes_; }
  std::int64_t last_ns() const { return last_ns_; }

 private:
  mqtt::async_client client_;
  std::atomic<std::uint64_t> messages_{0}, bytes_{0};
  std::atomic<std::int64_t> last_ns_{0};
};

}  // namespace postwatch::bench::e2e
