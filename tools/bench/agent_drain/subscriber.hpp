// The bench's subscriber: a plain Paho client on every agent's events that counts batches, events
// (each seq once) and payload bytes; and a wait that prints progress.
#pragma once

#include "agent_drain/common.hpp"
#include "postwatch/topics.hpp"

#include <mqtt/async_client.h>

#include <functional>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace postwatch::bench::agent_drain {

// ---------------------------------------------------------------- subscriber

// A plain Paho subscriber on the events topics: counts batches, events (each seq
// once) and payload bytes.
class Subscriber {
 public:
  struct Counts {
    std::uint64_t messages = 0, events = 0, unique = 0, duplicates = 0, payload_bytes = 0, undecodable = 0;
  };

  explicit Subscriber(const std::string& uri) : client_(uri, "pw-bench-subscriber") {
    client_.set_message_callback([this](mqtt::const_message_ptr m) { on_message(*m); });
    auto opts = mqtt::connect_options_builder().clean_session(true).keep_alive_interval(20s).finalize();
    client_.connect(opts)->wait();
    client_.subscribe(std::string(topics::events_filter), 1)->wait();
  }
  ~Subscriber() {
    try {
      if (client_.is_connected()) client_.disconnect(500)->wait_for(1s);
    } catch (const mqtt::exception&) {
    }
  }

  // Starts counting afresh; seqs 1..expected are tracked for duplicates.
  void reset(std::uint64_t expected) {
    std::lock_guard lk(mu_);
    counts_ = {};
    seen_.assign(expected + 1, false);
  }
  Counts counts() const {
    std::lock_guard lk(mu_);
    return counts_;
  }

 private:
  void on_message(const mqtt::message& m) {
    const auto& p = m.get_payload();
    auto err = decode_batch(std::span(reinterpret_cast<const std::uint8_t*>(p.data()), p.size()), view_);
    std::lock_guard lk(mu_);
    counts_.messages += 1;
    counts_.payload_bytes += p.size();
    if (err != DecodeError::None) {
      counts_.undecodable += 1;
      return;
    }
    counts_.events += view_.events.size();
    for (const auto& e : view_.events) {
      if (e.seq < seen_.size() && !seen_[e.seq]) {
        seen_[e.seq] = true;
        counts_.unique += 1;
      } else {
        counts_.duplicates += 1;
      }
    }
  }

  mqtt::async_client client_;
  BatchView view_;  // only touched on Paho's callback thread
  mutable std::mutex mu_;
  Counts counts_;
  std::vector<bool> seen_;
};

// Polls until `done`, printing progress about once a second; false on timeout.
inline bool wait_progress(const char* what, const std::function<bool()>& done,
                          const std::function<std::string()>& progress, std::chrono::seconds timeout) {
  const auto t0 = Clock::now();
  auto next = t0 + 1s;
  while (!done()) {
    check_stop();
    if (Clock::now() - t0 > timeout) return false;
    if (Clock::now() >= next) {
      std::cerr << "  " << what << "... " << progress() << " after " << static_cast<int>(seconds_since(t0)) << " s\n";
      next += 1s;
    }
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

}  // namespace postwatch::bench::agent_drain
