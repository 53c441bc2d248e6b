// postwatch-agent: the command-line front of the agent library.
#include "postwatch/agent/agent.hpp"
#include "postwatch/agent/device_probes.hpp"
#include "postwatch/agent/drop_directory.hpp"
#include "postwatch/agent/enrolment_client.hpp"
#include "postwatch/agent/event_json.hpp"
#include "postwatch/agent/fleet_bundles.hpp"
#include "postwatch/agent/line_input.hpp"
#include "postwatch/agent/local_api.hpp"
#include "postwatch/agent/remote_commands.hpp"
#include "postwatch/agent/script_probe.hpp"
#include "postwatch/agent/spool_store.hpp"
#include "postwatch/clock.hpp"
#include "postwatch/fleet_report_json.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <shared_mutex>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#ifndef POSTWATCH_VERSION
#define POSTWATCH_VERSION "dev"
#endif

namespace {
using namespace postwatch;
using namespace postwatch::agent;

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop = true; }

constexpr const char* kUsage = R"(postwatch-agent — publishes indicator events from a post to the Postwatch aggregator

usage:
  postwatch-agent run   --config FILE [--input FILE|-] [--exit-on-eof]
  postwatch-agent run   --config FILE --fifo PATH
      Reads events as JSON lines (stdin by default) and publishes them until
      SIGINT/SIGTERM; with --exit-on-eof it exits once input ends and every
      event was confirmed by the aggregator (by the broker with "delivery":
      {"confirm": "broker"}). With --input FILE it exits at the
      file's end. --fifo PATH (as the systemd unit runs it) creates the named
      pipe PATH (mode 0620) if missing and reads it until SIGTERM; local
      sources write one event per line into it.
      Alongside, `run` starts the inputs the config enables: local_api (a Unix
      socket, see `send`), drop_dir (JSON-lines/CSV files ingested once),
      probes (the board's health) and scripts (commands whose output is a value).
  postwatch-agent emit  --config FILE --indicator ID --value V [--note TEXT]
                        [--observed-at-ms MS] [--timeout-s N] [--expect-every-s N]
      Spools one event and waits for the aggregator's confirmation (the broker's
      acknowledgement with "delivery": {"confirm": "broker"}); if it does not come
      in time the event stays in the spool (exit 3) for the next run. A one-shot
      sender: leaving does not make its post silent. --expect-every-s N (a cron
      job's period) lets the aggregator mark the post silent when no emit came
      for 3 x N s; without it, only a resident agent (run) watches for silence.
  postwatch-agent send  --config FILE [JSON]
      Hands events to the running agent through its local API socket (the
      config's local_api.socket): JSON is one event object or an array of them;
      without it, each line of stdin is one request. Prints one answer line per
      request: {"results":[{"accepted":true,"seq":N}|{"accepted":false,"error":"..."}]}.
      Exit 0 all accepted, 1 any refused, 4 agent not reachable.
  postwatch-agent status --config FILE
      Shows the running agent's connection state, spool depth and last error.
  postwatch-agent enrol --config FILE --token TOKEN [--timeout-s N]
      Enrols this agent (docs/security.md): makes its signing key (identity.key_file,
      readable by its owner only; kept if it exists), sends the public half with
      proof of the one-time TOKEN the operations centre issued for this post and
      agent id (POST /api/v1/enrolment-tokens), and on the aggregator's signed
      acceptance writes the aggregator's key to identity.aggregator_key_file.
      TOKEN may be a file holding it. Exit 0 enrolled, 1 refused, 3 no answer.
  postwatch-agent rotate-key --config FILE [--timeout-s N]
      Replaces this enrolled agent's signing key (docs/security.md, "Rotation"):
      makes a new key in <identity.key_file>.next, sends its public half endorsed
      by the key in force, and on the aggregator's signed acceptance moves it over
      identity.key_file. A running agent takes it up within a few seconds; the
      aggregator accepts the old key for a grace period. A run cut short is
      finished by the next one. Exit 0 rotated, 1 refused, 2 not enrolled, 3 no
      answer.
  postwatch-agent --check-config FILE
      Validates a config file, the catalogue it names, the TLS and password
      files and the spool directory (as the user running it); prints every
      problem with its file and field. Exit 0 if all is well, 2 otherwise.
  postwatch-agent --version | --help

An event line: {"indicator":"terrorism_threat_level","value":4,"note":"optional"}
Exit status: 0 ok, 1 runtime failure or rejected events, 2 usage or config error,
3 event spooled but not yet confirmed (emit), 4 agent not running (status, send).
)";

struct Args {
  std::string command;
  std::string positional;  // `send`'s JSON
  std::map<std::string, std::string> opts;
  bool flag(const std::string& k) const { return opts.count(k) > 0; }
  std::string get(const std::string& k, const std::string& def = "") const {
    auto it = opts.find(k);
    return it == opts.end() ? def : it->second;
  }
};

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    if (s.rfind("--", 0) == 0) {
      std::string key = s.substr(2);
      bool takes_value = key != "exit-on-eof" && key != "help" && key != "version";
      if (takes_value) {
        if (i + 1 >= argc) throw std::invalid_argument("option --" + key + " needs a value");
        a.opts[key] = argv[++i];
      } else {
        a.opts[key] = "1";
      }
    } else if (a.command.empty()) {
      a.command = s;
    } else if (a.command == "send" && a.positional.empty()) {
      a.positional = s;
    } else {
      throw std::invalid_argument("unexpected argument '" + s + "'");
    }
  }
  return a;
}

using Loaded = LoadedConfig;

// Everything --check-config checks; refuses on any error, logs warnings (the agent still runs:
// e.g. a certificate not yet valid because the clock is not set yet).
Loaded load_config(const std::string& file, spdlog::logger* log) {
  ConfigCheck check = AgentConfig::validate(file, default_catalogue_path());
  if (!check.ok()) throw ConfigError(check.describe_all());
  for (const auto& p : check.problems)
    if (log) log->warn("{}", check.describe(p));
  return Loaded{std::move(*check.config), check.catalogue};
}

// The inputs `run` starts besides stdin/--fifo, one per line, for --check-config.
std::string describe_inputs(const AgentConfig& c) {
  std::ostringstream out;
  if (c.local_api.enabled) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", c.local_api.mode);
    out << "  input local_api: socket " << c.local_api.socket.string() << " (mode " << mode << ")\n";
  }
  if (c.drop_dir.enabled)
    out << "  input drop_dir: " << c.drop_dir.dir.string() << ", polled every " << c.drop_dir.poll_interval.count()
        << " s\n";
  if (c.probes.enabled) {
    out << "  input probes: every " << c.probes.interval.count() << " s:";
    for (auto [on, what] : {std::pair{c.probes.cpu, "cpu"},
                            {c.probes.memory, "memory"},
                            {c.probes.disk, "disk"},
                            {c.probes.uptime, "uptime"},
                            {c.probes.uplink, "uplink"},
                            {c.probes.clock, "clock"}})
      if (on) out << " " << what;
    out << "\n";
  }
  for (const auto& s : c.scripts)
    out << "  input script: " << s.indicator << " every " << s.interval.count() << " s (timeout " << s.timeout.count()
        << " s): " << s.command[0] << "\n";
  return out.str();
}

int cmd_check_config(const std::string& file) {
  ConfigCheck check = AgentConfig::validate(file, default_catalogue_path());
  if (check.problems.empty()) {
    std::cout << file << ": ok (agent " << check.config->agent_id << ", post " << check.config->post_id
              << ", catalogue " << check.catalogue->indicators().size() << " indicators, broker "
              << check.config->broker_uri << (check.config->uses_tls() ? " with TLS" : " PLAINTEXT");
    for (const auto& f : check.config->broker_fallbacks) std::cout << ", then " << f;
    std::cout << ")\n";
    std::cout << describe_inputs(*check.config);
    if (const auto& f = check.config->fleet; f.enabled())
      std::cout << "  fleet bundles: signed by a key in " << f.key_file.string() << ", held in " << f.state_dir.string()
                << (f.allow_scripts ? " (a bundle may add script probes)" : "") << "\n";
    return 0;
  }
  std::cout << check.describe_all() << "\n";
  std::size_t warnings = check.problems.size() - check.errors();
  std::cout << file << ": " << check.errors() << " error(s)";
  if (warnings) std::cout << ", " << warnings << " warning(s)";
  std::cout << "\n";
  return 2;
}

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

std::unique_ptr<Agent> make_agent(const Loaded& l, std::shared_ptr<spdlog::logger> log) {
  SpoolOptions spool = l.config.spool;
  spool.urgent = [cat = l.catalogue](const IndicatorEvent& e) {
    const Indicator* ind = cat->find_indicator(e.indicator);
    return ind && ind->is_urgent(e.number);
  };
  auto backlog = std::make_unique<SpoolStore>(spool, log);
  return std::make_unique<Agent>(l.config, l.catalogue, std::move(backlog), std::move(log));
}

std::filesystem::path status_file(const AgentConfig& c) { return c.spool.dir / "status.json"; }

const char* confirmer(const AgentConfig& c) { return c.aggregator_confirms() ? "aggregator" : "broker"; }

// The running agent's status, for `postwatch-agent status`; written atomically.
nlohmann::json fleet_status(const FleetBundles* fleet) {
  return fleet ? fleet_report_json(fleet->report()) : nlohmann::json();
}

// The counts of the agents a fleet bundle replaced in this process: the status file counts
// from the process's start (postwatch-agent status, the simulator's drain), not from the switch.
struct EarlierCounts {
  std::uint64_t accepted = 0, sent = 0, confirmed = 0, rejected = 0, dropped = 0;
  std::uint64_t resend_requests = 0, stall_resends = 0, confirm_rejected = 0, reconnects = 0;
  void add(const Agent& agent) {
    const auto s = agent.stats();
    accepted += s.accepted;
    sent += s.sent;
    confirmed += s.confirmed;
    rejected += s.rejected;
    dropped += agent.metrics().events_dropped;
    resend_requests += s.resend_requests;
    stall_resends += s.stall_resends;
    confirm_rejected += s.confirm_rejected;
    reconnects += s.reconnects;
  }
};
EarlierCounts g_earlier;  // main thread only

nlohmann::json status_json(const Agent& agent, const FleetBundles* fleet) {
  auto s = agent.stats();
  const auto& e = g_earlier;
  auto m = agent.metrics();
  nlohmann::json j{{"agent_id", agent.config().agent_id},
                   {"post_id", agent.config().post_id},
                   {"broker_uri", agent.config().broker_uri},
                   {"connected", s.connected},
                   {"pid", ::getpid()},
                   {"updated_at_ms", now_utc_ms()},
                   {"uptime_s", m.uptime_s},
                   {"spool_events", m.spool_events},
                   {"spool_bytes", m.spool_bytes},
                   {"oldest_unsent_age_ms", m.oldest_unsent_age_ms},
                   {"events_accepted", e.accepted + s.accepted},
                   {"events_sent", e.sent + s.sent},
                   {"events_confirmed", e.confirmed + s.confirmed},
                   {"events_rejected", e.rejected + s.rejected},
                   {"events_dropped", e.dropped + m.events_dropped},
                   {"delivery_confirm", confirmer(agent.config())},
                   {"sent_through_seq", s.sent_through_seq},
                   {"confirmed_through_seq", s.confirmed_through_seq},
                   {"resend_requests", e.resend_requests + s.resend_requests},
                   {"stall_resends", e.stall_resends + s.stall_resends},
                   {"confirm_rejected", e.confirm_rejected + s.confirm_rejected},
                   {"aggregator_key_ids", agent.aggregator_key_ids()},
                   {"reconnects", e.reconnects + s.reconnects},
                   {"clock_sync", std::string(to_string(s.clock_sync))},
                   {"clock_jumps", s.clock_jumps},
                   {"last_clock_jump_ms", s.last_clock_jump_ms},
                   {"rss_bytes", m.rss_bytes},
                   {"last_error", s.last_error},
                   {"fleet", fleet_status(fleet)}};
  return j;
}

void write_status(const Agent& agent, const FleetBundles* fleet = nullptr) {
  const auto j = status_json(agent, fleet);
  auto path = status_file(agent.config());
  auto tmp = path;
  tmp += ".tmp";
  std::error_code ec;
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << j.dump(2) << "\n";
    out.close();  // a full disk shows only once the buffer is written: check after closing
    if (!out) {
      std::filesystem::remove(tmp, ec);
      return;
    }
  }
  std::filesystem::rename(tmp, path, ec);
}

std::string join_ids(const nlohmann::json& ids) {
  std::string out;
  for (const auto& id : ids) out += (out.empty() ? "" : ", ") + (id.is_string() ? id.get<std::string>() : id.dump());
  return out;
}

// The status file's fleet object as one line of `status`.
std::string describe_fleet_status(const nlohmann::json& f) {
  if (!f.is_object()) return "no fleet bundles (fleet.key_file not set)";
  auto version = [](std::uint64_t v) { return v ? "bundle v" + std::to_string(v) : std::string("the board's own"); };
  std::string out = "config from " + version(f.value("config_bundle", std::uint64_t{0})) + ", catalogue from " +
                    version(f.value("catalogue_bundle", std::uint64_t{0})) + " (catalogue_version " +
                    std::to_string(f.value("catalogue_version", 0)) + ")";
  const auto last = f.value("last_outcome", "none");
  if (last != "none") {
    out += "; last: v" + std::to_string(f.value("last_version", std::uint64_t{0})) + " " + last;
    if (const auto why = f.value("last_reason", ""); !why.empty() && last != "applied") out += " (" + why + ")";
  }
  return out;
}

int cmd_status(const Args& args) {
  auto config = AgentConfig::load(args.get("config"));
  std::ifstream in(status_file(config));
  if (!in) {
    std::cout << "agent " << config.agent_id << ": not running (no " << status_file(config).string() << ")\n";
    return 4;
  }
  auto j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded()) {
    std::cout << "agent " << config.agent_id << ": status file unreadable\n";
    return 4;
  }
  auto age_s = (now_utc_ms() - j.value("updated_at_ms", std::int64_t{0})) / 1000;
  bool alive = age_s <= 5 && ::kill(j.value("pid", 0), 0) == 0;
  std::cout << "agent      " << j.value("agent_id", "") << " (post " << j.value("post_id", "") << ")\n"
            << "state      " << (alive ? "running" : "NOT RUNNING (status is " + std::to_string(age_s) + " s old)")
            << ", pid " << j.value("pid", 0) << ", up " << j.value("uptime_s", 0) << " s\n"
            << "broker     " << j.value("broker_uri", "") << " — "
            << (j.value("connected", false) ? "connected" : "DISCONNECTED") << ", " << j.value("reconnects", 0)
            << " reconnect(s)\n"
            << "spool      " << j.value("spool_events", 0) << " unconfirmed event(s), " << j.value("spool_bytes", 0)
            << " bytes, oldest " << j.value("oldest_unsent_age_ms", 0) / 1000 << " s\n"
            << "events     " << j.value("events_accepted", 0) << " accepted, " << j.value("events_sent", 0) << " sent, "
            << j.value("events_confirmed", 0) << " confirmed, " << j.value("events_rejected", 0) << " rejected, "
            << j.value("events_dropped", 0) << " dropped\n"
            << "delivery   confirmed by the " << j.value("delivery_confirm", "broker") << "; sent through seq "
            << j.value("sent_through_seq", 0) << ", confirmed through seq " << j.value("confirmed_through_seq", 0)
            << ", " << j.value("resend_requests", 0) << " resend request(s), " << j.value("stall_resends", 0)
            << " resend(s) after no confirmation, " << j.value("confirm_rejected", 0) << " confirmation(s) ignored\n"
            << "clock      " << j.value("clock_sync", "unknown") << ", " << j.value("clock_jumps", 0)
            << " jump(s) while running"
            << (j.value("clock_jumps", 0) > 0
                    ? ", the last " + std::to_string(j.value("last_clock_jump_ms", std::int64_t{0}) / 1000) + " s"
                    : std::string())
            << "\n"
            << "trust      "
            << (j.value("aggregator_key_ids", nlohmann::json::array()).empty()
                    ? std::string("not enrolled: unsigned, confirmations unchecked")
                    : "obeys confirmations signed by aggregator key(s) " + join_ids(j["aggregator_key_ids"]))
            << "\n"
            << "fleet      " << describe_fleet_status(j.value("fleet", nlohmann::json())) << "\n"
            << "memory     " << j.value("rss_bytes", 0) / 1024 << " KiB resident\n"
            << "last error " << (j.value("last_error", "").empty() ? "(none)" : j.value("last_error", "")) << "\n";
  return alive ? 0 : 4;
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

// The inputs the config enables, each on its own thread, all submitting to `agent`.
std::vector<std::unique_ptr<EventSource>> make_sources(const Loaded& l, Agent& agent,
                                                       const std::shared_ptr<spdlog::logger>& log) {
  EventSink sink = [&agent](IndicatorEvent e) { return agent.submit(std::move(e)); };
  const AgentConfig& c = l.config;
  std::vector<std::unique_ptr<EventSource>> sources;
  if (c.local_api.enabled) sources.push_back(std::make_unique<LocalApiServer>(c.local_api, l.catalogue, sink, log));
  if (c.drop_dir.enabled) sources.push_back(std::make_unique<DropDirectoryWatcher>(c.drop_dir, l.catalogue, sink, log));
  if (c.probes.enabled)
    sources.push_back(std::make_unique<DeviceProbes>(c.probes, c.broker_uri, c.spool.dir, sink, log, c.uplink_proxy));
  for (const auto& script : c.scripts) sources.push_back(std::make_unique<ScriptProbe>(script, l.catalogue, sink, log));
  return sources;
}

int cmd_send(const Args& args) {
  auto config = AgentConfig::load(args.get("config"));
  if (!config.local_api.enabled) {
    std::cerr << "postwatch-agent: " << args.get("config") << " has no local_api section: no socket to send to\n";
    return 2;
  }
  std::vector<std::string> requests;
  if (!args.positional.empty()) {
    requests.push_back(args.positional);
  } else {
    for (std::string line; std::getline(std::cin, line);)
      if (line.find_first_not_of(" \t\r") != std::string::npos) requests.push_back(line);
  }
  bool all_accepted = true;
  for (const auto& request : requests) {
    std::string answer;
    try {
      answer = local_api_request(config.local_api.socket, request, std::chrono::seconds(30));
    } catch (const std::exception& e) {
      std::cerr << "postwatch-agent: " << e.what() << "\n";
      return 4;
    }
    std::cout << answer << "\n";
    auto j = nlohmann::json::parse(answer, nullptr, false);
    if (j.is_discarded() || j.contains("error")) all_accepted = false;
    if (j.is_object() && j["results"].is_array())
      for (const auto& r : j["results"])
        if (!r.value("accepted", false)) all_accepted = false;
  }
  return all_accepted ? 0 : 1;
}

// The agent and its inputs as one config makes them; replaced whole when a fleet bundle goes
// on trial or is rolled back.
struct RunningAgent {
  Loaded loaded;
  std::unique_ptr<Agent> agent;
  std::vector<std::unique_ptr<EventSource>> sources;

  std::vector<std::string> input_problems() const {
    std::vector<std::string> out;
    for (const auto& s : sources)
      if (auto p = s->problem(); !p.empty()) out.push_back(std::move(p));
    return out;
  }
};

std::unique_ptr<RunningAgent> start_agent(Loaded loaded, FleetBundles* fleet, RemoteCommands* commands,
                                          const std::shared_ptr<spdlog::logger>& log) {
  auto run = std::make_unique<RunningAgent>();
  run->loaded = std::move(loaded);
  run->agent = make_agent(run->loaded, log);
  if (fleet) {
    const auto& c = run->loaded.config;
    const auto* post = run->loaded.catalogue->find_post(c.post_id);
    auto topics = fleet->topics(post ? post->region : "");
    const auto commands_topic = command_topic(c.post_id, c.agent_id);
    if (commands) topics.push_back(commands_topic);
    run->agent->subscribe_also(topics,
                               [fleet, commands, commands_topic](const std::string& topic, std::string payload) {
                                 if (commands && topic == commands_topic)
                                   commands->offer(std::move(payload));
                                 else
                                   fleet->offer(std::move(payload));
                               });
    run->agent->set_fleet_report(fleet->report());
  }
  run->agent->start();
  run->sources = make_sources(run->loaded, *run->agent, log);
  for (auto& source : run->sources) source->start();
  return run;
}

// Remote commands (docs/fleet.md, "Remote commands"), each answered on the agent's result topic.
void run_commands(RemoteCommands& commands, RunningAgent& run, const FleetBundles* fleet, spdlog::logger& log) {
  for (const auto& c : commands.take()) {
    auto status = [&] {
      auto j = status_json(*run.agent, fleet);
      j["inputs"] = nlohmann::json::array();
      for (const auto& s : run.sources) j["inputs"].push_back({{"source", s->name()}, {"problem", s->problem()}});
      return j.dump();
    };
    auto r = run_fleet_command(c, *run.agent, run.sources, status);
    if (r.ok)
      log.info("remote command {} ({}) done", c.name, c.id);
    else
      log.warn("remote command {} ({}) failed: {}", c.name, c.id, r.error);
    const auto& cfg = run.loaded.config;
    run.agent->publish_message(command_result_topic(cfg.post_id, cfg.agent_id), encode_fleet_command_result(r));
  }
}

void stop_agent(RunningAgent& run) {
  for (auto& source : run.sources) source->stop();
  run.agent->stop();
}

int cmd_run(const Args& args, const std::shared_ptr<spdlog::logger>& log) {
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
      g_stop);
  reader.start();
  bool exit_on_eof = args.flag("exit-on-eof") || (input != "-" && !fifo);
  auto next_status = std::chrono::steady_clock::now();
  while (!g_stop && !(exit_on_eof && reader.finished())) {
    if (fleet) {
      if (auto next = fleet->poll(agent->stats(), running->input_problems())) {
        std::unique_lock lk(swap_mu);
        // The old agent goes first: it holds the spool (one process, one owner).
        auto previous = running->loaded;
        stop_agent(*running);
        g_earlier.add(*running->agent);
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
    if (commands) run_commands(*commands, *running, fleet.get(), *log);
    if (std::chrono::steady_clock::now() >= next_status) {
      write_status(*agent, fleet.get());
      next_status += std::chrono::seconds(1);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (!g_stop) {
    if (!agent->wait_until_drained(std::chrono::seconds(30))) {
      log->error("timed out waiting for the {} to {} {} event(s)", confirmer(running->loaded.config),
                 running->loaded.config.aggregator_confirms() ? "confirm" : "acknowledge",
                 agent->stats().backlog.events);
    }
  }
  for (auto& source : running->sources) source->stop();
  auto s = agent->stats();
  agent->stop();
  write_status(*agent, fleet.get());
  reader.stop();  // if still reading, within one poll
  if (fd != STDIN_FILENO) ::close(fd);
  log->info("accepted {} sent {} confirmed {} rejected {} unconfirmed {}", g_earlier.accepted + s.accepted,
            g_earlier.sent + s.sent, g_earlier.confirmed + s.confirmed, g_earlier.rejected + s.rejected,
            s.backlog.events);
  if (fifo) return 0;  // a service stopped by SIGTERM: unsent events wait in the spool, rejections were logged
  return (s.backlog.events == 0 && reader.rejected() == 0) ? 0 : 1;
}

int cmd_emit(const Args& args, const std::shared_ptr<spdlog::logger>& log) {
  auto loaded = load_config(args.get("config"), log.get());
  if (!args.flag("indicator") || !args.flag("value")) throw std::invalid_argument("emit needs --indicator and --value");
  nlohmann::json j;
  j["indicator"] = args.get("indicator");
  const Indicator* ind = loaded.catalogue->find_indicator(args.get("indicator"));
  std::string value = args.get("value");
  if (ind && ind->kind == ValueKind::Text)
    j["value"] = value;
  else if (value == "true" || value == "false")
    j["value"] = value == "true";
  else {
    try {
      std::size_t used = 0;
      j["value"] = std::stod(value, &used);
      if (used != value.size()) throw std::invalid_argument(value);
    } catch (const std::exception&) {
      std::cerr << "postwatch-agent: --value '" << value << "' is not a number\n";
      return 2;
    }
  }
  if (args.flag("note")) j["note"] = args.get("note");
  if (args.flag("observed-at-ms")) j["observed_at_ms"] = std::stoll(args.get("observed-at-ms"));
  IndicatorEvent ev;
  if (auto err = parse_event_json(j.dump(), *loaded.catalogue, ev); !err.empty()) {
    std::cerr << "postwatch-agent: rejected: " << err << "\n";
    return 1;
  }
  loaded.config.batch_max_delay = std::chrono::milliseconds(0);  // one event: send at once
  loaded.config.one_shot = true;
  if (args.flag("expect-every-s")) {
    int every = std::stoi(args.get("expect-every-s"));
    if (every < 0 || every > 31 * 24 * 3600) throw std::invalid_argument("--expect-every-s must be 0 to 2678400");
    loaded.config.expect_every = std::chrono::seconds(every);
  }
  auto agent = make_agent(loaded, log);
  auto r = agent->submit(std::move(ev));
  if (!r.accepted) {
    std::cerr << "postwatch-agent: rejected: " << r.error << "\n";
    return 1;
  }
  agent->start();
  auto timeout = std::chrono::seconds(std::stoi(args.get("timeout-s", "15")));
  if (!agent->wait_until_drained(timeout)) {
    auto s = agent->stats();
    std::cerr << "postwatch-agent: ";
    if (loaded.config.aggregator_confirms() && s.sent_through_seq >= r.seq)
      std::cerr << "broker " << loaded.config.broker_uri << " acknowledged seq " << r.seq
                << " but the aggregator did not confirm it within " << timeout.count() << " s";
    else
      std::cerr << "broker " << loaded.config.broker_uri << " did not acknowledge within " << timeout.count() << " s ("
                << s.last_error << ")";
    std::cerr << "; seq " << r.seq << " stays in the spool directory "
              << std::filesystem::absolute(loaded.config.spool.dir).string() << " and is sent by the next run\n";
    return 3;
  }
  std::cout << "sent seq " << r.seq << " to " << agent->events_topic()
            << (loaded.config.aggregator_confirms() ? ", confirmed by the aggregator" : ", acknowledged by the broker")
            << "\n";
  return 0;
}

int cmd_enrol(const Args& args, const std::shared_ptr<spdlog::logger>& log) {
  if (!args.flag("token"))
    throw std::invalid_argument("enrol needs --token (as POST /api/v1/enrolment-tokens gave it)");
  auto loaded = load_config(args.get("config"), log.get());
  std::string token = args.get("token");
  std::error_code ec;
  if (!token.starts_with("pwt1.") && std::filesystem::is_regular_file(token, ec)) {  // a file holding it
    std::ifstream in(token);
    std::getline(in, token);
  }
  auto out = enrol_agent(loaded.config, *loaded.catalogue, token,
                         std::chrono::seconds(std::stoi(args.get("timeout-s", "30"))), *log);
  (out.exit_code == 0 ? std::cout : std::cerr)
      << (out.exit_code == 0 ? "" : "postwatch-agent: ") << out.message << "\n";
  return out.exit_code;
}

int cmd_rotate_key(const Args& args, const std::shared_ptr<spdlog::logger>& log) {
  auto loaded = load_config(args.get("config"), log.get());
  auto out = rotate_agent_key(loaded.config, *loaded.catalogue,
                              std::chrono::seconds(std::stoi(args.get("timeout-s", "30"))), *log);
  (out.exit_code == 0 ? std::cout : std::cerr)
      << (out.exit_code == 0 ? "" : "postwatch-agent: ") << out.message << "\n";
  return out.exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  // One malloc arena, not one per thread that allocates (publisher, input reader, Paho's two,
  // each source): the agent's threads allocate little, and each arena keeps its own pages.
  ::mallopt(M_ARENA_MAX, 1);
  auto log = spdlog::stderr_color_mt("agent");
  log->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%n] %v");
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  try {
    Args args = parse_args(argc, argv);
    if (args.flag("help") || (args.command.empty() && args.opts.empty())) {
      std::cout << kUsage;
      return args.flag("help") ? 0 : 2;
    }
    if (args.flag("version")) {
      std::cout << "postwatch-agent " << POSTWATCH_VERSION << " (wire schema v1)\n";
      return 0;
    }
    if (args.flag("check-config")) return cmd_check_config(args.get("check-config"));
    if (!args.flag("config")) throw std::invalid_argument("--config FILE is required");
    if (args.command == "run") return cmd_run(args, log);
    if (args.command == "emit") return cmd_emit(args, log);
    if (args.command == "status") return cmd_status(args);
    if (args.command == "enrol") return cmd_enrol(args, log);
    if (args.command == "rotate-key") return cmd_rotate_key(args, log);
    if (args.command == "send") return cmd_send(args);
    throw std::invalid_argument("unknown command '" + args.command + "'");
  } catch (const std::invalid_argument& e) {
    std::cerr << "postwatch-agent: " << e.what() << "\n(see postwatch-agent --help)\n";
    return 2;
  } catch (const ConfigError& e) {
    std::istringstream lines(e.what());  // one line per problem
    for (std::string line; std::getline(lines, line);) std::cerr << "postwatch-agent: config error: " << line << "\n";
    return 2;
  } catch (const CatalogueError& e) {
    std::cerr << "postwatch-agent: catalogue error: " << e.what() << "\n";
    return 2;
  } catch (const BacklogRefused& e) {
    std::cerr << "postwatch-agent: spool error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "postwatch-agent: " << e.what() << "\n";
    return 1;
  }
}
