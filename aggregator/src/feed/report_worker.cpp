#include "feed/report_worker.hpp"

namespace postwatch::aggregator {

ReportWorker::ReportWorker(std::size_t max_queued) : max_queued_(max_queued), thread_([this] { run(); }) {}

ReportWorker::~ReportWorker() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
    jobs_.clear();
  }
  cv_.notify_all();
  thread_.join();
}

bool ReportWorker::submit(std::function<void()> job) {
  {
    std::lock_guard lk(mu_);
    if (stopping_ || jobs_.size() >= max_queued_) return false;
    jobs_.push_back(std::move(job));
  }
  cv_.notify_one();
  return true;
}

void ReportWorker::run() {
  std::unique_lock lk(mu_);
  while (true) {
    cv_.wait(lk, [&] { return stopping_ || !jobs_.empty(); });
    if (stopping_) return;
    auto job = std::move(jobs_.front());
    jobs_.pop_front();
    lk.unlock();  // the job reads the store: never under the lock
    job();
    lk.lock();
  }
}

}  // namespace postwatch::aggregator
