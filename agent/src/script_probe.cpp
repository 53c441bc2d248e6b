#include "postwatch/agent/script_probe.hpp"

#include "postwatch/agent/event_file.hpp"

#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace postwatch::agent {

namespace {

constexpr std::size_t kMaxOutputBytes = std::size_t{64} * 1024;

std::string first_line(const std::string& s) {
  auto start = s.find_first_not_of(" \t\r\n");
  if (start == std::string::npos) return "";
  auto end = s.find_first_of("\r\n", start);
  auto line = s.substr(start, end == std::string::npos ? std::string::npos : end - start);
  while (!line.empty() && (line.back() == ' ' || line.back() == '\t')) line.pop_back();
  return line;
}

std::string last_line(const std::string& s) {
  auto end = s.find_last_not_of(" \t\r\n");
  if (end == std::string::npos) return "";
  auto start = s.find_last_of("\r\n", end);
  return s.substr(start == std::string::npos ? 0 : start + 1, end - (start == std::string::npos ? 0 : start + 1) + 1);
}

}  // namespace

ScriptRun run_command(const std::vector<std::string>& command, std::chrono::milliseconds timeout,
                      const std::atomic<bool>* abort) {
  ScriptRun run;
  if (command.empty()) {
    run.error = "no command";
    return run;
  }
  // Everything the child needs is prepared before fork(): after it only async-signal-safe calls.
  std::vector<char*> argv;
  argv.reserve(command.size() + 1);
  for (const auto& a : command) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  int out[2], err[2], exec_err[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return run.error = std::strerror(errno), run;
  if (::pipe2(err, O_CLOEXEC) != 0) {
    ::close(out[0]), ::close(out[1]);
    return run.error = std::strerror(errno), run;
  }
  if (::pipe2(exec_err, O_CLOEXEC) != 0) {
    for (int fd : {out[0], out[1], err[0], err[1]}) ::close(fd);
    return run.error = std::strerror(errno), run;
  }
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);  // its own group, so a timeout kills whatever it started too
    ::signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    int devnull = ::open("/dev/null", O_RDONLY);
    ::dup2(devnull, 0);
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    ::dup2(exec_err[1], 3);  // reports a failed exec; closed by a successful one
    ::fcntl(3, F_SETFD, FD_CLOEXEC);
    ::syscall(SYS_close_range, 4, ~0U, 0);  // the agent's sockets and spool files stay the agent's
    ::execvp(argv[0], argv.data());
    int e = errno;
    [[maybe_unused]] auto n = ::write(3, &e, sizeof e);
    ::_exit(127);
  }
  ::close(out[1]);
  ::close(err[1]);
  ::close(exec_err[1]);
  if (pid < 0) {
    run.error = std::string("fork(): ") + std::strerror(errno);
    for (int fd : {out[0], err[0], exec_err[0]}) ::close(fd);
    return run;
  }
  ::setpgid(pid, pid);  // also here: no race with the kill below
  run.started = true;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string errors;
  bool out_open = true, err_open = true;
  while (out_open || err_open) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || (abort && *abort)) {
      run.timed_out = true;
      break;
    }
    pollfd fds[2] = {{out_open ? out[0] : -1, POLLIN, 0}, {err_open ? err[0] : -1, POLLIN, 0}};
    if (::poll(fds, 2, static_cast<int>(std::min<std::int64_t>(left.count(), 100))) < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (!fds[i].revents) continue;
      char buf[4096];
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) {
        (i == 0 ? out_open : err_open) = false;
        continue;
      }
      std::string& into = i == 0 ? run.output : errors;
      if (into.size() < kMaxOutputBytes) into.append(buf, std::min<std::size_t>(n, kMaxOutputBytes - into.size()));
    }
  }
  int status = 0;
  while (!run.timed_out) {
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) break;
    if (std::chrono::steady_clock::now() >= deadline || (abort && *abort)) {
      run.timed_out = true;
      break;
    }
    ::usleep(10'000);  // output closed, exit imminent
  }
  if (run.timed_out) {
    ::kill(-pid, SIGKILL);
    ::waitpid(pid, &status, 0);
  }
  int exec_errno = 0;
  if (::read(exec_err[0], &exec_errno, sizeof exec_errno) == sizeof exec_errno) {
    run.started = false;
    run.error = "cannot run " + command[0] + ": " + std::strerror(exec_errno);
  }
  for (int fd : {out[0], err[0], exec_err[0]}) ::close(fd);
  if (!run.timed_out) {
    if (WIFEXITED(status)) run.exit_code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) run.signal = WTERMSIG(status);
  }
  run.error_output = last_line(errors);
  return run;
}

std::string script_event(const ScriptRun& run, const Indicator& indicator, IndicatorEvent& out) {
  if (!run.started) return run.error;
  if (run.timed_out) return "timed out";
  auto with_stderr = [&](const std::string& s) { return run.error_output.empty() ? s : s + ": " + run.error_output; };
  if (run.signal) return with_stderr("killed by signal " + std::to_string(run.signal));
  if (run.exit_code != 0) return with_stderr("exit status " + std::to_string(run.exit_code));
  std::string value = first_line(run.output);
  if (value.empty()) return "no output (expected the value on the first line)";
  out = IndicatorEvent{};
  out.indicator = indicator.id;
  if (auto err = parse_value_text(indicator, value, out); !err.empty()) {
    if (value.size() > 80) value.replace(80, std::string::npos, "...");
    return "output '" + value + "' is not a valid value: " + err;
  }
  return {};
}

ScriptProbe::ScriptProbe(ScriptProbeConfig config, std::shared_ptr<const IndicatorCatalogue> catalogue, EventSink sink,
                         std::shared_ptr<spdlog::logger> log)
    : config_(std::move(config)), catalogue_(std::move(catalogue)), sink_(std::move(sink)), log_(std::move(log)) {}

ScriptProbe::~ScriptProbe() { ScriptProbe::stop(); }

std::string ScriptProbe::problem() const {
  std::lock_guard lk(mu_);
  return last_failure_;
}

void ScriptProbe::report_failure(const std::string& why) {
  ++failures_;
  std::string what = config_.indicator + ": " + (config_.command.empty() ? "" : config_.command[0]) + ": " + why;
  {
    std::lock_guard lk(mu_);
    last_failure_ = "script probe " + what;
  }
  log_->warn("script probe {}", what);
  if (!catalogue_->find_indicator("agent_script_failures")) return;
  IndicatorEvent e;
  e.indicator = "agent_script_failures";
  e.kind = ValueKind::Count;
  e.number = 1;
  e.note = what.substr(0, 256);
  if (auto r = sink_(std::move(e)); !r.accepted) log_->warn("script probe failure event not accepted: {}", r.error);
}

bool ScriptProbe::run_once() {
  const Indicator* ind = catalogue_->find_indicator(config_.indicator);
  if (!ind) {
    report_failure("'" + config_.indicator + "' is not an indicator in the catalogue");
    return false;
  }
  ScriptRun run = run_command(config_.command, config_.timeout, &stopping_);
  if (run.timed_out && stopping_) return false;  // the agent is stopping, not the script failing
  IndicatorEvent ev;
  std::string err = script_event(run, *ind, ev);
  if (run.timed_out) err = "timed out after " + std::to_string(config_.timeout.count()) + " s (process group killed)";
  if (err.empty()) {
    auto r = sink_(std::move(ev));
    if (r.accepted) {
      ++successes_;
      std::lock_guard lk(mu_);
      last_failure_.clear();
      return true;
    }
    err = "value not accepted: " + r.error;
  }
  report_failure(err);
  return false;
}

void ScriptProbe::start() {
  stopping_ = false;
  thread_ = std::thread([this] {
    std::unique_lock lk(mu_);
    while (!stopping_) {
      lk.unlock();
      auto next = std::chrono::steady_clock::now() + config_.interval;
      run_once();
      lk.lock();
      wake_.wait_until(lk, next, [&] { return stopping_.load(); });
    }
  });
  log_->info("script probe {} every {} s (timeout {} s): {}", config_.indicator, config_.interval.count(),
             config_.timeout.count(), config_.command.empty() ? "" : config_.command[0]);
}

void ScriptProbe::stop() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace postwatch::agent
