// postwatch-agent's command line: the usage text, the arguments, and the config --config names.
#include "agent_commands.hpp"

#include <spdlog/spdlog.h>

#include <stdexcept>

namespace postwatch::agent::cli {

const char* const kUsage = R"(postwatch-agent — publishes indicator events from a post to the Postwatch aggregator

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

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    if (s.starts_with("--")) {
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

Loaded load_config(const std::string& file, spdlog::logger* log) {
  ConfigCheck check = AgentConfig::validate(file, default_catalogue_path());
  if (!check.ok()) throw ConfigError(check.describe_all());
  for (const auto& p : check.problems)
    if (log) log->warn("{}", check.describe(p));
  return Loaded{std::move(*check.config), check.catalogue};
}

}  // namespace postwatch::agent::cli
