// Script probes: a configured command runs every N seconds with a timeout; the first line of
// its output is the value of a given indicator (docs/agent.md, "Script probes"). A failing or
// hanging script is logged, counted and reported as an agent_script_failures event; it only
// ever holds its own thread.
#pragma once

#include "postwatch/agent/agent_config.hpp"
#include "postwatch/agent/event_source.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace spdlog {
class logger;
}

namespace postwatch::agent {

struct ScriptRun {
  bool started = false;  // false: fork/exec failed (error says why)
  bool timed_out = false;
  int exit_code = -1;        // when it exited
  int signal = 0;            // when a signal ended it
  std::string output;        // stdout, at most 64 KiB
  std::string error_output;  // stderr's last line, for the failure report
  std::string error;
};

// Runs `command` (no shell) in its own process group with stdin from /dev/null; kills the whole
// group with SIGKILL when `timeout` passes, or as soon as `*abort` turns true (agent stopping).
// Safe to call from any thread.
ScriptRun run_command(const std::vector<std::string>& command, std::chrono::milliseconds timeout,
                      const std::atomic<bool>* abort = nullptr);

// Turns a run into an event for `indicator`: empty on success, otherwise the failure as one line
// ("timed out after 10 s", "exit status 3: <stderr>", "output 'abc' is not a number ...").
std::string script_event(const ScriptRun& run, const Indicator& indicator, IndicatorEvent& out);

class ScriptProbe : public EventSource {
 public:
  ScriptProbe(ScriptProbeConfig config, std::shared_ptr<const IndicatorCatalogue> catalogue, EventSink sink,
              std::shared_ptr<spdlog::logger> log);
  ~ScriptProbe() override;

  std::string_view name() const override { return "script"; }
  const std::string& indicator() const { return config_.indicator; }
  void start() override;
  void stop() override;
  // The last run's failure, until a run succeeds.
  std::string problem() const override;
  bool has_result() const override { return failures_ + successes_ > 0; }

  // Runs the script once and reports the value or the failure; true on success.
  bool run_once();
  std::uint64_t failures() const { return failures_; }
  std::uint64_t successes() const { return successes_; }

 private:
  void report_failure(const std::string& why);

  ScriptProbeConfig config_;
  std::shared_ptr<const IndicatorCatalogue> catalogue_;
  EventSink sink_;
  std::shared_ptr<spdlog::logger> log_;
  std::atomic<std::uint64_t> failures_{0}, successes_{0};
  std::atomic<bool> stopping_{false};
  mutable std::mutex mu_;
  std::string last_failure_;  // guarded by mu_
  std::condition_variable wake_;
  std::thread thread_;
};

}  // namespace postwatch::agent
