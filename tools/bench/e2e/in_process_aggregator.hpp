// The e2e phases' subscriber: an AggregatorService on its own io thread in this process, its
// /api/v1/stats read back as the figures' source, and which threads are its own (CPU by thread).
#pragma once

#include "e2e/common.hpp"
#include "postwatch/aggregator/aggregator_service.hpp"
#include "postwatch/catalogue.hpp"
#include "support/test_support.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <pthread.h>
#include <unistd.h>

#include <cstdlib>
#include <future>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace postwatch::bench::e2e {

struct Stats {
  bool ok = false;
  std::uint64_t accepted = 0, persisted = 0, pending = 0, duplicate = 0, gaps = 0, rejected = 0;
  std::size_t body_bytes = 0, agents = 0;
  double request_ms = 0;
};

inline std::uint64_t json_number(const std::string& body, const std::string& key, bool& found) {
  auto at = body.find("\"" + key + "\":");
  if (at == std::string::npos) {
    found = false;
    return 0;
  }
  return std::strtoull(body.c_str() + at + key.size() + 3, nullptr, 10);
}

class InProcessAggregator {
 public:
  InProcessAggregator(const std::string& broker_uri, const fs::path& data_dir,
                      std::shared_ptr<const IndicatorCatalogue> catalogue, std::shared_ptr<spdlog::logger> log)
      : data_dir_(data_dir), work_(boost::asio::make_work_guard(io_)) {
    fs::create_directories(data_dir);
    aggregator::AggregatorOptions o;
    o.broker_uri = broker_uri;
    o.client_id = "pw-bench-aggregator";  // one persistent session, reused by every instance
    o.http_address = "127.0.0.1";
    o.http_port = 0;
    o.data_dir = data_dir;
    const auto before = thread_cpu();
    service_ = std::make_unique<aggregator::AggregatorService>(io_, o, std::move(catalogue), std::move(log));
    service_->start();
    port_ = service_->http_port();
    std::promise<std::string> tid;
    thread_ = std::thread([this, &tid] {
      pthread_setname_np(pthread_self(), "pw-aggr-io");
      tid.set_value(std::to_string(::gettid()));
      io_.run();
    });
    io_tid_ = tid.get_future().get();
    for (const auto& [t, v] : thread_cpu())
      if (!before.count(t) && t != io_tid_) other_tids_.push_back(t);
    std::cerr << "  aggregator io thread " << io_tid_ << ", threads new at start:";
    for (const auto& t : other_tids_) std::cerr << " " << t;
    std::cerr << "\n";
    if (!test::wait_until([&] { return test::http_get(port_, "/readyz").status == 200 || g_stop; }, 30s))
      throw std::runtime_error("the aggregator did not subscribe within 30 s");
    check_stop();
  }
  ~InProcessAggregator() {
    std::promise<void> stopped;
    boost::asio::post(io_, [&] {
      service_->stop();
      stopped.set_value();
    });
    stopped.get_future().wait_for(15s);
    work_.reset();
    io_.stop();
    thread_.join();
    service_.reset();
  }
  unsigned short port() const { return port_; }
  const std::string& io_tid() const { return io_tid_; }
  // Threads that appeared when the service started, other than the io thread: the
  // store's writer (Paho's threads too, unless another client already runs them).
  const std::vector<std::string>& other_tids() const { return other_tids_; }
  fs::path db() const { return data_dir_ / "postwatch.sqlite"; }

  Stats stats() const {
    Stats s;
    auto t0 = Clock::now();
    auto r = test::http_get(port_, "/api/v1/stats");
    s.request_ms = 1000 * seconds_since(t0);
    if (r.status != 200) return s;
    bool found = true;
    s.accepted = json_number(r.body, "events_accepted", found);
    s.persisted = json_number(r.body, "events_persisted", found);
    s.pending = json_number(r.body, "store_pending_events", found);
    s.duplicate = json_number(r.body, "events_duplicate", found);
    s.gaps = json_number(r.body, "events_gaps", found);
    s.rejected = json_number(r.body, "batches_rejected", found);
    s.body_bytes = r.body.size();
    s.agents = static_cast<std::size_t>(json_number(r.body, "agents_tracked", found));
    s.ok = found;
    return s;
  }

 private:
  fs::path data_dir_;
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::unique_ptr<aggregator::AggregatorService> service_;
  std::thread thread_;
  unsigned short port_ = 0;
  std::string io_tid_;
  std::vector<std::string> other_tids_;
};

}  // namespace postwatch::bench::e2e
