// postwatch-agent run: the resident agent — events from stdin, a file or a FIFO and from the
// inputs the config enables, until SIGTERM or the input's end; fleet bundles and remote commands
// taken on the way.
#include "agent_commands.hpp"
#include "running_agent.hpp"
#include "status_file.hpp"

#include "postwatch/agent/event_json.hpp"
#include "postwatch/agent/line_input.hpp"
#include "postwatch/clock.hpp"

#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <malloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <shared_mutex>
#include <thread>

namespace postwatch::agent::cli {
namespace {

// --fifo PATH: the named pipe local sources write event lines into; created (mode 0620) if missing.
void ensure_fifo(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    if (!S_ISFIFO(st.st_mode)) throw ConfigError(path + ": exists and is not a FIFO (named pipe)");
    return;
  }
  // Made under a temporary name and renamed once its mode is right, whatever the umask, so
  // no source ever sees the FIFO with the umask's mode (the owner reads, the group's sources write).
  auto tmp = path + ".tmp" + std::to_string(::getpid());
  if (::mkfifo(tmp.c_str(), 0620) != 0) throw ConfigError(path + ": cannot create FIFO: " + std::strerror(errno));
  if (::chmod(tmp.c_str(), 0620) != 0 || ::rename(tmp.c_str(), path.c_str()) != 0) {
    auto err = errno;
    ::unlink(tmp.c_str());
    throw ConfigError(path + ": cannot create FIFO: " + std::strerror(err));
  }
}

bool is_fifo(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISFIFO(st.st_mode);
}

void log_connection_security(const AgentConfig& c, spdlog::logger& log) {
  if (!c.uses_tls()) {
    log.warn("broker connection is plaintext (allow_plaintext)");
    return;
  }
  log.info("TLS to {}: trust store {}, client certificate {}, host name check {}{}", c.broker_uri,
           c.tls.ca_file.empty() ? "(system)" : c.tls.ca_file, c.tls.cert_file.empty() ? "(none)" : c.tls.cert_file,
           c.tls.verify_hostname ? "on" : "OFF", c.username.empty() ? "" : ", login " + c.username);
}

}  // namespace

int cmd_run(const Args& args, const std::shared_ptr<spdlog::logger>& log, const std::atomic<bool>& stop) {
  auto loaded = load_config(args.get("config"), log.get());
  std::string input = args.get("input", "-");
  if (args.flag("fifo")) {
    if (args.flag("input")) throw std::invalid_argument("give either --input or --fifo");
    input = args.get("fifo");
    ensure_fifo(input);
  }
  // A FIFO is opened for reading and writing, so it never reports end of input when a writer
  // closes it: sources come and go, the agent runs until SIGTERM.
  bool fifo = input != "-" && is_fifo(input);
  std::unique_ptr<FleetBundles> fleet;
  EarlierCounts earlier;  // of the agents a fleet bundle replaced
  std::unique_ptr<RemoteCommands> commands;
  if (loaded.config.fleet.enabled()) {
    fleet = std::make_unique<FleetBundles>(args.get("config"), default_catalogue_path(), loaded.config, log);
    loaded = fleet->start(loaded);
    commands = std::make_unique<RemoteCommands>(loaded.config.fleet.state_dir, log);
  }
  log_connection_security(loaded.config, *log);
  auto running = start_agent(loaded, fleet.get(), commands.get(), log);
  Agent* agent = running->agent.get();
  log->info("agent {} for post {} publishing to {} on {}", loaded.config.agent_id, loaded.config.post_id,
            agent->events_topic(), loaded.config.broker_uri);
  if (fleet)
    log->info("fleet bundles signed by {} are taken from {} and its region, post and agent topics",
              loaded.config.fleet.key_file.string(), bundle_topic(BundleTarget{}));
  if (agent->stats().clock_sync == ClockSync::Unsynchronised)
    log->warn(
        "the board's clock is not synchronised (the kernel says so, or it is before this agent was built: {} UTC ms); "
        "the aggregator corrects event times by the offset it measures and flags them. Fix NTP on this board "
        "(docs/agent.md, \"Time\")",
        now_utc_ms());
  // Loading the config and the catalogue built JSON trees, freed since, among what stays (the
  // catalogue itself): ~200 KB of the heap no longer used but still resident. Give it back.
  ::malloc_trim(0);

  int fd = STDIN_FILENO;
  if (input != "-") {
    fd = ::open(input.c_str(), (fifo ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) throw ConfigError(input + ": cannot open input file: " + std::strerror(errno));
  }
  // The reader submits under a shared lock; a switch to another config takes it exclusively,
  // so a line read meanwhile waits for the new agent instead of meeting a stopped one.
  std::shared_mutex swap_mu;
  LineInput reader(
      fd, input,
      [&](const std::string& line) {
        IndicatorEvent ev;
        std::shared_lock lk(swap_mu);
        std::string err = parse_event_json(line, *running->loaded.catalogue, ev);
        if (err.empty()) {
          auto r = running->agent->submit(std::move(ev));
          if (!r.accepted) err = r.error;
        }
        return err;
      },
      stop);
  reader.start();
  bool exit_on_eof = args.flag("exit-on-eof") || (input != "-" && !fifo);
  auto next_status = std::chrono::steady_clock::now();
  while (!stop && !(exit_on_eof && reader.finished())) {
    if (fleet) {
      if (auto next = fleet->poll(agent->stats(), running->input_problems())) {
        std::unique_lock lk(swap_mu);
        // The old agent goes first: it holds the spool (one process, one owner).
        auto previous = running->loaded;
        stop_agent(*running);
        earlier.add(*running->agent);
        running.reset();
        try {
          running = start_agent(std::move(*next), fleet.get(), commands.get(), log);
        } catch (const std::exception& e) {
          auto back = fleet->give_up_trial(std::string("the new config did not start: ") + e.what());
          running = start_agent(back ? std::move(*back) : std::move(previous), fleet.get(), commands.get(), log);
        }
        agent = running->agent.get();
      }
      agent->set_fleet_report(fleet->report());
    }
    if (commands) run_commands(*commands, *running, fleet.get(), earlier, *log);
    if (std::chrono::steady_clock::now() >= next_status) {
      write_status(*agent, fleet.get(), earlier);
      next_status += std::chrono::seconds(1);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (!stop) {
    if (!agent->wait_until_drained(std::chrono::seconds(30))) {
      log->error("timed out waiting for the {} to {} {} event(s)", delivery_confirmer(running->loaded.config),
                 running->loaded.config.aggregator_confirms() ? "confirm" : "acknowledge",
                 agent->stats().backlog.events);
    }
  }
  for (auto& source : running->sources) source->stop();
  auto s = agent->stats();
  agent->stop();
  write_status(*agent, fleet.get(), earlier);
  reader.stop();  // if still reading, within one poll
  if (fd != STDIN_FILENO) ::close(fd);
  log->info("accepted {} sent {} confirmed {} rejected {} unconfirmed {}", earlier.accepted + s.accepted,
            earlier.sent + s.sent, earlier.confirmed + s.confirmed, earlier.rejected + s.rejected, s.backlog.events);
  if (fifo) return 0;  // a service stopped by SIGTERM: unsent events wait in the spool, rejections were logged
  return (s.backlog.events == 0 && reader.rejected() == 0) ? 0 : 1;
}

}  // namespace postwatch::agent::cli
