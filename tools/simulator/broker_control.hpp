// Stops and restarts the broker for a broker_outage step, with commands the caller
// gives (--broker-stop-cmd, --broker-start-cmd; tools/run-demo passes its own): the
// simulator cannot stop a broker it does not own. Commands run through /bin/sh one
// after another on a worker thread, so the world keeps producing events meanwhile;
// each exit status is checked and logged.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace spdlog {
class logger;
}

namespace postwatch::sim {

class BrokerControl {
 public:
  BrokerControl(std::string stop_command, std::string start_command, std::shared_ptr<spdlog::logger> log);
  ~BrokerControl();  // runs what is queued, then returns
  BrokerControl(const BrokerControl&) = delete;
  BrokerControl& operator=(const BrokerControl&) = delete;

  // Queue the command; `done` (optional) runs on the worker thread once it has
  // finished, with whether it exited with status 0.
  void stop_broker(std::function<void(bool ok)> done = {});
  void start_broker(std::function<void(bool ok)> done = {});
  // Waits until every queued command has finished.
  void wait_idle();

 private:
  struct Command {
    std::string what, text;
    std::function<void(bool)> done;
  };
  void queue(Command c);
  void run_queue();
  bool run(const Command& c);

  std::string stop_command_, start_command_;
  std::shared_ptr<spdlog::logger> log_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Command> queue_;
  bool busy_ = false, closing_ = false;
  std::thread worker_;
};

// Runs `command` with /bin/sh -c, its output going where ours goes, without our open
// descriptors (a daemon it starts must not hold the relay's sockets open). Returns the
// wait status, or -1 when it could not be started.
int run_shell(const std::string& command);

}  // namespace postwatch::sim
