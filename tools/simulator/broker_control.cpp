#include "broker_control.hpp"

#include <spdlog/spdlog.h>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <cerrno>
#include <chrono>

extern char** environ;

namespace postwatch::sim {

int run_shell(const std::string& command) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  // The simulator ignores SIGPIPE; the command should not inherit that.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
  std::string sh = "/bin/sh", dash_c = "-c", cmd = command;
  char* argv[] = {sh.data(), dash_c.data(), cmd.data(), nullptr};
  pid_t pid = -1;
  int rc = posix_spawn(&pid, "/bin/sh", &actions, &attr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return -1;
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return -1;
  return status;
}

BrokerControl::BrokerControl(std::string stop_command, std::string start_command, std::shared_ptr<spdlog::logger> log)
    : stop_command_(std::move(stop_command)),
      start_command_(std::move(start_command)),
      log_(std::move(log)),
      worker_([this] { run_queue(); }) {}

BrokerControl::~BrokerControl() {
  {
    std::lock_guard lk(mu_);
    closing_ = true;
  }
  cv_.notify_all();
  worker_.join();
}

void BrokerControl::stop_broker(std::function<void(bool)> done) {
  queue({"broker stop command", stop_command_, std::move(done)});
}

void BrokerControl::start_broker(std::function<void(bool)> done) {
  queue({"broker start command", start_command_, std::move(done)});
}

void BrokerControl::queue(Command c) {
  {
    std::lock_guard lk(mu_);
    queue_.push_back(std::move(c));
  }
  cv_.notify_all();
}

void BrokerControl::wait_idle() {
  std::unique_lock lk(mu_);
  cv_.wait(lk, [&] { return queue_.empty() && !busy_; });
}

void BrokerControl::run_queue() {
  std::unique_lock lk(mu_);
  for (;;) {
    cv_.wait(lk, [&] { return closing_ || !queue_.empty(); });
    if (queue_.empty()) return;  // closing, nothing left
    Command c = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    lk.unlock();
    bool ok = run(c);
    if (c.done) c.done(ok);
    lk.lock();
    busy_ = false;
    cv_.notify_all();
  }
}

bool BrokerControl::run(const Command& c) {
  log_->info("{}: {}", c.what, c.text);
  auto t0 = std::chrono::steady_clock::now();
  int status = run_shell(c.text);
  double took_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  bool ok = status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (status == -1)
    log_->error("{} could not be started (/bin/sh)", c.what);
  else if (ok)
    log_->info("{} succeeded after {:.1f} s", c.what, took_s);
  else if (WIFEXITED(status))
    log_->error("{} failed with exit status {} after {:.1f} s", c.what, WEXITSTATUS(status), took_s);
  else
    log_->error("{} was killed by signal {} after {:.1f} s", c.what, WTERMSIG(status), took_s);
  return ok;
}

}  // namespace postwatch::sim
