// One thread for the requests that take seconds (GET /api/v1/report reads months of history):
// they run here, in turn, so the io_context thread never waits on them. A bounded queue: a
// request beyond it is refused at once rather than left waiting.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace postwatch::aggregator {

class ReportWorker {
 public:
  explicit ReportWorker(std::size_t max_queued = 2);
  ~ReportWorker();  // finishes the job running, drops the rest
  ReportWorker(const ReportWorker&) = delete;
  ReportWorker& operator=(const ReportWorker&) = delete;

  // False when `max_queued` jobs wait already.
  bool submit(std::function<void()> job);

 private:
  void run();

  std::size_t max_queued_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace postwatch::aggregator
