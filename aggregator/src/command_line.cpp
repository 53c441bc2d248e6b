#include "command_line.hpp"

#include "postwatch/catalogue.hpp"
#include "postwatch/command_line_start.hpp"
#include "postwatch/secret_file.hpp"

#include <boost/program_options.hpp>

#include <cstdint>
#include <iostream>
#include <stdexcept>

#ifndef POSTWATCH_VERSION
#define POSTWATCH_VERSION "dev"
#endif

namespace postwatch::aggregator {

namespace po = boost::program_options;

namespace {

// What the command line gives in other units or forms than AggregatorOptions keeps.
struct CommandLineUnits {
  explicit CommandLineUnits(const AggregatorOptions& opts)
      : data_dir(opts.data_dir.string()),
        min_duration_s(static_cast<double>(opts.min_duration_ms) / 1000.0),
        lateness_s(static_cast<double>(opts.allowed_lateness_ms) / 1000.0),
        rotation_grace_s(opts.key_rotation_grace_ms / 1000),
        clock_beyond_s(opts.clock_correct_beyond_ms / 1000),
        retention_days(static_cast<double>(opts.event_retention_ms) / 86'400'000.0) {}
  std::string data_dir;
  std::string tokens_file;
  std::string notifications_file;
  std::string keys_dir;
  std::string broker_password_file;
  double min_duration_s;
  double lateness_s;
  std::int64_t rotation_grace_s;
  std::int64_t clock_beyond_s;
  std::string store_sync = "full";
  double retention_days;
  std::uint64_t store_max_mb = 0;
};

po::options_description describe(CommandLine& cl, CommandLineUnits& u) {
  auto& opts = cl.options;
  po::options_description desc(
      "postwatch-aggregator — consumes Postwatch agents' events over MQTT and serves goal-level indicators\n\noptions");
  desc.add_options()("help,h", "show this help")("version", "print the version")(
      "broker", po::value(&opts.broker_uri)->default_value(opts.broker_uri),
      "MQTT broker URI; several, comma separated, are tried in turn (a NATS cluster's MQTT listeners)")(
      "client-id", po::value(&opts.client_id)->default_value(opts.client_id),
      "MQTT client id (stable, so the broker keeps messages while the aggregator restarts)")(
      "broker-username", po::value(&opts.broker_username),
      "MQTT user name (postwatch-broker-config makes 'postwatch-aggregator')")(
      "broker-password-file", po::value(&u.broker_password_file),
      "file holding the MQTT password (readable by its owner only)")(
      "broker-ca", po::value(&opts.broker_ca_file),
      "CA certificate that signed the broker's certificate (ssl:// URIs; default: the system's CAs)")(
      "broker-cert", po::value(&opts.broker_cert_file), "client certificate for mutual TLS (ssl:// URIs)")(
      "broker-key", po::value(&opts.broker_key_file), "private key for --broker-cert")(
      "http-address", po::value(&opts.http_address)->default_value(opts.http_address), "HTTP listen address")(
      "http-port", po::value(&opts.http_port)->default_value(opts.http_port), "HTTP port (0 = any free port)")(
      "tokens-file", po::value(&u.tokens_file),
      "API tokens (JSON, not readable by other users); without it the API is open, on loopback only")(
      "tls-cert", po::value(&opts.tls_cert_file), "serve HTTPS with this PEM certificate chain (needs --tls-key)")(
      "tls-key", po::value(&opts.tls_key_file), "PEM private key for --tls-cert")(
      "fleet-keys", po::value(&opts.fleet_keys_file)->value_name("FILE"),
      "the fleet's public key(s) (postwatch-fleet keygen's fleet.pub): with it, operators start staged "
      "rollouts of signed bundles through /api/v1/rollouts (docs/fleet.md)")(
      "keys-dir", po::value(&u.keys_dir)->value_name("DIR"),
      "the aggregator's signing key and enrolment secret, made on first start (default: <data-dir>/keys; "
      "docs/security.md). In a cluster every instance needs the same aggregator.key and enrolment.secret: copy them "
      "from the first instance's before the others start (docs/security.md, \"Key custody\")")(
      "require-signatures", po::bool_switch(&opts.require_signatures),
      "refuse unsigned batches and states from every agent, not only from enrolled ones")(
      "key-rotation-grace-s", po::value(&u.rotation_grace_s)->default_value(u.rotation_grace_s),
      "an agent key rotated out (postwatch-agent rotate-key) stays valid this long (at least 60)")(
      "notifications", po::value(&u.notifications_file)->value_name("FILE"),
      "send alarm changes to webhooks as this file's routes say (JSON; docs/alerting.md)")(
      "stream-max-queue", po::value(&opts.stream_max_queue)->default_value(opts.stream_max_queue),
      "live-stream messages a client may fall behind before it is dropped")(
      "stream-max-clients", po::value(&opts.stream_max_clients)->default_value(opts.stream_max_clients),
      "live-stream (WebSocket) clients at once; further upgrade requests are refused with 503")(
      "catalogue", po::value(&cl.catalogue_file)->value_name("FILE"),
      (std::string("indicator catalogue (JSON); default: ") + kDefaultCatalogueHelp).c_str())(
      "data-dir", po::value(&u.data_dir)->default_value(u.data_dir), "where the SQLite store lives")(
      "store-sync", po::value(&u.store_sync)->default_value(u.store_sync),
      "full: fsync every commit, so what agents are confirmed survives a power cut; normal: survives a crash of "
      "the aggregator, not of the machine")(
      "event-retention-days", po::value(&u.retention_days)->default_value(u.retention_days, "8"),
      "raw events are kept this long (at least 1; the rollups' longest window is 7 days)")(
      "store-max-mb", po::value(&u.store_max_mb)->default_value(u.store_max_mb),
      "raw events beyond this many MB of store go, oldest first, except those of the last 7 days; 0 = no cap")(
      "min-duration-s", po::value(&u.min_duration_s)->default_value(u.min_duration_s),
      "a new goal status must hold this long before it shows")(
      "allowed-lateness-s", po::value(&u.lateness_s)->default_value(u.lateness_s),
      "events observed longer ago count only where they are the newest reading")(
      "clock-correct-beyond-s", po::value(&u.clock_beyond_s)->default_value(u.clock_beyond_s),
      "an agent clock further off than this gets its event times corrected, and its post a warning alarm")(
      "hysteresis", po::value(&opts.hysteresis_band)->default_value(opts.hysteresis_band, "0.1"),
      "share of |red - baseline| a value must fall back past a threshold to clear it")(
      "min-coverage", po::value(&opts.min_coverage)->default_value(opts.min_coverage),
      "below this share of a goal's posts reporting, green shows as unknown")(
      "missed-heartbeats", po::value(&opts.missed_heartbeats)->default_value(opts.missed_heartbeats),
      "a post is silent after this many heartbeat intervals without news")(
      "tick-ms", po::value(&opts.tick_ms)->default_value(opts.tick_ms), "status evaluation interval")(
      "confirm-interval-ms", po::value(&opts.confirm_interval_ms)->default_value(opts.confirm_interval_ms),
      "how often agents hear which of their events are committed (they release their spool on it); 0 = never")(
      "outbound-window", po::value(&opts.outbound_window)->default_value(opts.outbound_window),
      "messages published and not yet acknowledged by the broker, at most; the rest wait, by priority (1-2048)")(
      "max-queued-messages", po::value(&opts.max_queued_messages)->default_value(opts.max_queued_messages),
      "MQTT delivery pauses while this many messages wait for the io thread (back-pressure)")(
      "max-store-backlog", po::value(&opts.max_store_backlog_events)->default_value(opts.max_store_backlog_events),
      "MQTT delivery pauses while this many events wait to be written to the store")(
      "cluster-group", po::value(&opts.cluster_group),
      "share the event partitions with every instance of this group, on NATS JetStream (docs/scale-out.md); needs "
      "--nats, and each instance its own --client-id and --data-dir")(
      "instance-id", po::value(&opts.instance_id), "this instance's name in the cluster (default: --client-id)")(
      "nats", po::value(&opts.nats_servers),
      "the NATS cluster's servers, comma separated (nats://host:4222,...); --broker is then one of its MQTT listeners")(
      "nats-user", po::value(&opts.nats_user), "NATS user of the aggregators")(
      "nats-password-file", po::value(&opts.nats_password_file), "file holding that user's password")(
      "nats-partitions", po::value(&opts.nats_partitions)->default_value(opts.nats_partitions),
      "event partitions; must equal the broker's mapping (postwatch-broker-config --nats)")(
      "nats-replicas", po::value(&opts.nats_replicas)->default_value(opts.nats_replicas),
      "replicas of the events stream and the key-value buckets (1 on a single node)")(
      "lease-ms", po::value(&opts.lease_ms)->default_value(opts.lease_ms),
      "a partition whose holder stops renewing its lease is taken over after this")(
      "snapshot-interval-ms", po::value(&opts.snapshot_interval_ms)->default_value(opts.snapshot_interval_ms),
      "how often a held partition's changed posts are written to the shared bucket (and its messages acknowledged)")(
      "log-level", po::value(&cl.log_level)->default_value(cl.log_level), "trace, debug, info, warn, error");
  return desc;
}

// Into the options' own units; a value that does not convert is an error (exit 2).
std::string apply(const CommandLineUnits& u, AggregatorOptions& opts) {
  if (u.store_sync != "full" && u.store_sync != "normal")
    return "--store-sync must be full or normal, not '" + u.store_sync + "'";
  opts.data_dir = u.data_dir;
  opts.store_fsync = u.store_sync == "full";
  opts.event_retention_ms = static_cast<std::int64_t>(u.retention_days * 86'400'000.0);
  opts.store_max_bytes = u.store_max_mb * 1'000'000;
  opts.tokens_file = u.tokens_file;
  opts.notifications_file = u.notifications_file;
  opts.keys_dir = u.keys_dir;
  opts.min_duration_ms = static_cast<std::int64_t>(u.min_duration_s * 1000);
  opts.allowed_lateness_ms = static_cast<std::int64_t>(u.lateness_s * 1000);
  opts.key_rotation_grace_ms = u.rotation_grace_s * 1000;
  opts.clock_correct_beyond_ms = u.clock_beyond_s * 1000;
  if (!u.broker_password_file.empty()) {
    try {
      opts.broker_password = read_secret_file(u.broker_password_file);
    } catch (const std::runtime_error& e) {
      return std::string("--broker-password-file: ") + e.what();
    }
  }
  return {};
}

}  // namespace

std::variant<CommandLine, int> parse_command_line(int argc, char** argv) {
  CommandLine cl;
  CommandLineUnits units(cl.options);
  const auto desc = describe(cl, units);
  po::variables_map vm;
  if (auto status =
          start_command_line(argc, argv, desc, "postwatch-aggregator",
                             std::string("postwatch-aggregator ") + POSTWATCH_VERSION + " (wire schema v1)", vm))
    return *status;
  auto why = apply(units, cl.options);
  if (why.empty()) why = options_problem(cl.options);
  if (!why.empty()) {
    std::cerr << "postwatch-aggregator: " << why << "\n";
    return 2;
  }
  return cl;
}

}  // namespace postwatch::aggregator
