#include "process_fleet.hpp"

#include "fleet_enrolment.hpp"

#include "postwatch/clock.hpp"

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

namespace postwatch::sim {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// What a post's agent would be configured with, pointed at the simulator's broker (or
// relay): plaintext on loopback, a small disk spool, quick batches so the board moves.
json agent_config(const AgentSpec& spec, const fs::path& catalogue_file, const fs::path& spool_dir) {
  json c{{"broker_uri", spec.broker_uri},
         {"agent_id", spec.agent_id},
         {"post_id", spec.post_id},
         {"allow_plaintext", true},
         {"catalogue_file", fs::absolute(catalogue_file).string()},
         {"spool", {{"dir", spool_dir.string()}, {"max_bytes", 64 << 20}, {"segment_bytes", 1 << 20}}},
         {"batch", {{"max_delay_ms", 100}}}};
  if (!spec.broker_fallbacks.empty()) c["broker_fallbacks"] = spec.broker_fallbacks;
  if (spec.compression != BatchCompression::None)
    c["uplink"] = {{"compression", std::string(to_string(spec.compression))}};
  if (!spec.fleet_key_file.empty())  // --fleet-keys: rollouts and remote commands reach it (docs/fleet.md)
    c["fleet"] = {{"key_file", fs::absolute(spec.fleet_key_file).string()}};
  if (!spec.identity_dir.empty()) {  // enrolled by --enrol (fleet_enrolment.hpp)
    const auto id = identity_of(spec);
    c["identity"] = {{"key_file", id.key_file.string()}, {"aggregator_key_file", id.aggregator_key_file.string()}};
  }
  return c;
}

// The event as a line for the agent's FIFO (agent/src/event_json.cpp reads it).
std::string event_line(const Indicator& ind, const IndicatorEvent& e) {
  json j{{"indicator", e.indicator}, {"observed_at_ms", e.observed_at_ms}};
  if (ind.kind == ValueKind::Text)
    j["value"] = e.text;
  else
    j["value"] = e.number;
  if (!e.note.empty()) j["note"] = e.note;
  if (!e.tags.empty()) {
    json tags = json::object();
    for (const auto& [k, v] : e.tags) tags[k] = v;
    j["tags"] = tags;
  }
  return j.dump() + "\n";
}

std::string last_lines(const fs::path& file, std::size_t n) {
  std::ifstream in(file);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  std::string out;
  for (std::size_t i = lines.size() > n ? lines.size() - n : 0; i < lines.size(); ++i) out += "\n  " + lines[i];
  return out;
}

bool running(pid_t pid, int& exit_status) {
  if (pid <= 0 || exit_status != -1) return false;
  int status = 0;
  if (::waitpid(pid, &status, WNOHANG) == pid) {
    exit_status = status;
    return false;
  }
  return true;
}

}  // namespace

ProcessFleet::ProcessFleet(std::shared_ptr<const IndicatorCatalogue> catalogue, const std::vector<AgentSpec>& agents,
                           ProcessFleetOptions options, std::shared_ptr<spdlog::logger> log)
    : catalogue_(std::move(catalogue)), options_(std::move(options)), log_(std::move(log)) {
  if (agents.size() > kMaxProcesses)
    throw std::invalid_argument("--processes runs one postwatch-agent per simulated agent; " +
                                std::to_string(agents.size()) + " is more than " + std::to_string(kMaxProcesses) +
                                ": use fewer --posts or --agents-per-post, or run them in-process");
  if (::access(options_.agent_binary.c_str(), X_OK) != 0)
    throw std::invalid_argument("agent binary " + options_.agent_binary.string() +
                                " is not there or not executable (--agent-binary; build the postwatch-agent target)");
  if (options_.work_dir.empty()) {
    std::string templ = (fs::temp_directory_path() / "postwatch-sim.XXXXXX").string();
    if (!::mkdtemp(templ.data())) throw std::runtime_error("cannot create a temporary directory: " + templ);
    work_dir_ = templ;
    remove_work_dir_ = true;
  } else {
    work_dir_ = fs::absolute(options_.work_dir);
  }
  for (const auto& spec : agents) {
    Child c;
    c.spec = spec;
    c.dir = work_dir_ / spec.agent_id;
    c.config = c.dir / "agent.json";
    c.fifo = c.dir / "events.fifo";
    c.log = c.dir / "agent.log";
    c.status_file = c.dir / "spool" / "status.json";
    prepare(c);
    children_.push_back(std::move(c));
  }
}

ProcessFleet::~ProcessFleet() {
  stop_children(std::chrono::seconds(5));
  for (auto& c : children_)
    if (c.fifo_fd >= 0) ::close(c.fifo_fd);
  if (remove_work_dir_) {
    std::error_code ec;
    fs::remove_all(work_dir_, ec);
  }
}

void ProcessFleet::prepare(Child& c) const {
  fs::create_directories(c.dir / "spool");
  {
    std::ofstream out(c.config);
    out << agent_config(c.spec, options_.catalogue_file, c.dir / "spool").dump(2) << "\n";
    if (!out) throw std::runtime_error(c.config.string() + ": cannot write");
  }
  fs::remove(c.status_file);  // a status from an earlier run in the same work dir would look alive
  if (::mkfifo(c.fifo.c_str(), 0600) != 0 && errno != EEXIST)
    throw std::runtime_error(c.fifo.string() + ": cannot create FIFO: " + std::strerror(errno));
  // Read-write, so opening never waits for the agent and a write never raises SIGPIPE;
  // non-blocking, so an agent that stops reading costs refused events, not a stuck world.
  c.fifo_fd = ::open(c.fifo.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (c.fifo_fd < 0) throw std::runtime_error(c.fifo.string() + ": cannot open: " + std::strerror(errno));
}

void ProcessFleet::start() {
  for (auto& c : children_) spawn(c);
  log_->info("started {} postwatch-agent processes (pids {}-{}); configs, FIFOs, spools and logs in {}",
             children_.size(), children_.empty() ? 0 : children_.front().pid,
             children_.empty() ? 0 : children_.back().pid, work_dir_.string());
}

void ProcessFleet::spawn(Child& c) {
  // Everything the child needs is made before fork: after it, only async-signal-safe calls.
  std::vector<std::string> args = {
      options_.agent_binary.string(), "run", "--config", c.config.string(), "--fifo", c.fifo.string()};
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::string log_path = c.log.string();
  pid_t parent = ::getpid();

  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error(std::string("fork failed: ") + std::strerror(errno));
  if (pid == 0) {
    // Own process group: a Ctrl-C in the terminal reaches the simulator only, which then
    // stops the agents after draining them. If the simulator dies, so do they.
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    ::signal(SIGPIPE, SIG_DFL);  // ignored by the simulator; an ignored signal would stay ignored across exec
    if (::getppid() != parent) ::_exit(1);
    int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    int devnull = ::open("/dev/null", O_RDONLY);
    if (fd < 0 || devnull < 0) ::_exit(126);
    ::dup2(devnull, 0);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    // No inherited sockets: an agent holding a relayed connection open would defeat a cut.
    ::close_range(3, ~0U, 0);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  c.pid = pid;
}

std::string ProcessFleet::describe_exit(const Child& c) const {
  std::string how = WIFEXITED(c.exit_status) ? "exit status " + std::to_string(WEXITSTATUS(c.exit_status))
                                             : "signal " + std::to_string(WTERMSIG(c.exit_status));
  return "agent " + c.spec.agent_id + " (" + c.spec.post_id + ") exited (" + how + "); last lines of " +
         c.log.string() + ":" + last_lines(c.log, 5);
}

void ProcessFleet::refresh(std::chrono::milliseconds min_age) const {
  auto now = std::chrono::steady_clock::now();
  if (now - last_refresh_ < min_age) return;
  last_refresh_ = now;
  for (auto& c : children_) {
    bool was_running = c.exit_status == -1 && c.pid > 0;
    if (was_running && !running(c.pid, c.exit_status)) log_->error("{}", describe_exit(c));
    std::ifstream in(c.status_file);
    if (!in) continue;
    auto j = json::parse(in, nullptr, false);
    if (!j.is_object()) continue;  // being replaced: the next refresh reads it
    Status& s = c.status;
    s.fresh = true;
    s.connected = j.value("connected", false) && c.exit_status == -1;
    s.accepted = j.value("events_accepted", std::uint64_t{0});
    s.sent = j.value("events_sent", std::uint64_t{0});
    s.confirmed = j.value("events_confirmed", std::uint64_t{0});
    s.rejected = j.value("events_rejected", std::uint64_t{0});
    s.spool_events = j.value("spool_events", std::uint64_t{0});
    s.updated_at_ms = j.value("updated_at_ms", std::int64_t{0});
    s.last_error = j.value("last_error", "");
  }
}

bool ProcessFleet::wait_connected(std::chrono::milliseconds timeout, const std::atomic<bool>& cancel) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    refresh(std::chrono::milliseconds(0));
    std::size_t connected = 0;
    for (const auto& c : children_) {
      if (c.exit_status != -1) {
        start_error_ = describe_exit(c);
        return false;
      }
      connected += c.status.connected;
    }
    if (connected == children_.size()) return true;
    if (cancel || std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

agent::SubmitResult ProcessFleet::submit(std::size_t agent, IndicatorEvent event) {
  Child& c = children_[agent];
  agent::SubmitResult r;
  // Checked here too, so a simulator bug shows up as it does in-process (the agent checks again).
  r.error = agent::validate_event(*catalogue_, event);
  if (!r.error.empty()) {
    ++invalid_events_;
    return r;
  }
  std::string line = event_line(*catalogue_->find_indicator(event.indicator), event);
  // A line is far below PIPE_BUF, so the write is all or nothing.
  ssize_t n = ::write(c.fifo_fd, line.data(), line.size());
  if (n != static_cast<ssize_t>(line.size())) {
    ++c.lines_refused;
    r.error = errno == EAGAIN ? "FIFO full: the agent process is not reading" : std::strerror(errno);
    return r;
  }
  r.accepted = true;
  r.seq = ++c.lines_written;
  c.last_write_ms = now_utc_ms();
  return r;
}

std::uint64_t ProcessFleet::backlog_events(std::size_t agent) const {
  refresh();
  return children_[agent].status.spool_events;
}

FleetTotals ProcessFleet::totals() const {
  refresh();
  FleetTotals t;
  t.agents = children_.size();
  t.rejected = invalid_events_;
  for (const auto& c : children_) {
    const Status& s = c.status;
    t.accepted += s.accepted;
    t.sent += s.sent;
    t.confirmed += s.confirmed;
    t.rejected += s.rejected + c.lines_refused;
    // Unacknowledged: in the spool, or still in the FIFO.
    std::uint64_t read = s.accepted + s.rejected;
    t.backlog += s.spool_events + (c.lines_written > read ? c.lines_written - read : 0);
    t.connected += s.connected;
  }
  return t;
}

std::string ProcessFleet::last_error() const {
  if (!start_error_.empty()) return start_error_;
  for (const auto& c : children_)
    if (!c.status.last_error.empty()) return c.spec.agent_id + ": " + c.status.last_error;
  return {};
}

bool ProcessFleet::drain_and_stop(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  bool drained = false;
  while (!drained) {
    refresh(std::chrono::milliseconds(0));
    drained = true;
    for (const auto& c : children_) {
      if (c.exit_status != -1) continue;  // reported when it exited
      const Status& s = c.status;
      // The status must postdate the last line written, else its counts may not include it.
      drained = drained && s.updated_at_ms > c.last_write_ms && s.accepted + s.rejected >= c.lines_written &&
                s.spool_events == 0;
    }
    if (drained || std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  stop_children(std::chrono::seconds(5));
  refresh(std::chrono::milliseconds(0));  // each agent writes its final status as it stops
  return drained;
}

void ProcessFleet::stop_children(std::chrono::milliseconds grace) {
  std::size_t left = 0;
  for (auto& c : children_)
    if (running(c.pid, c.exit_status)) {
      ::kill(c.pid, SIGTERM);  // the agent stops cleanly: death message, disconnect
      ++left;
    }
  if (left == 0) return;
  auto deadline = std::chrono::steady_clock::now() + grace;
  while (left > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    left = 0;
    for (auto& c : children_) left += running(c.pid, c.exit_status);
  }
  for (auto& c : children_)
    if (running(c.pid, c.exit_status)) {
      log_->warn("agent {} did not stop within {} ms of SIGTERM; killing it", c.spec.agent_id, grace.count());
      ::kill(c.pid, SIGKILL);
      ::waitpid(c.pid, &c.exit_status, 0);
    }
}

}  // namespace postwatch::sim
