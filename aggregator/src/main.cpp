// postwatch-aggregator: consumes agents' events and serves goal-level indicators.
#include "ingest/mqtt_ingest.hpp"
#include "postwatch/aggregator/aggregator_service.hpp"
#include "postwatch/secret_file.hpp"
#include "progress/target_catalogue.hpp"
#include "rollouts/catalogue_adoption.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/program_options.hpp>

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <iostream>
#include <stdexcept>

#ifndef POSTWATCH_VERSION
#define POSTWATCH_VERSION "dev"
#endif

namespace po = boost::program_options;
using namespace postwatch;

int main(int argc, char** argv) {
  aggregator::AggregatorOptions opts;
  std::string catalogue_file;  // empty: default_catalogue_path()
  std::string log_level = "info";
  std::string data_dir = opts.data_dir.string();
  std::string tokens_file;
  std::string notifications_file;
  std::string keys_dir;
  std::string broker_password_file;
  double min_duration_s = static_cast<double>(opts.min_duration_ms) / 1000.0;
  double lateness_s = static_cast<double>(opts.allowed_lateness_ms) / 1000.0;
  std::int64_t rotation_grace_s = opts.key_rotation_grace_ms / 1000;
  std::int64_t clock_beyond_s = opts.clock_correct_beyond_ms / 1000;
  std::string store_sync = "full";
  double retention_days = static_cast<double>(opts.event_retention_ms) / 86'400'000.0;
  std::uint64_t store_max_mb = 0;
  po::options_description desc(
      "postwatch-aggregator — consumes Postwatch agents' events over MQTT and serves goal-level indicators\n\noptions");
  desc.add_options()("help,h", "show this help")("version", "print the version")(
      "broker", po::value(&opts.broker_uri)->default_value(opts.broker_uri),
      "MQTT broker URI; several, comma separated, are tried in turn (a NATS cluster's MQTT listeners)")(
      "client-id", po::value(&opts.client_id)->default_value(opts.client_id),
      "MQTT client id (stable, so the broker keeps messages while the aggregator restarts)")(
      "broker-username", po::value(&opts.broker_username),
      "MQTT user name (postwatch-broker-config makes 'postwatch-aggregator')")(
      "broker-password-file", po::value(&broker_password_file),
      "file holding the MQTT password (readable by its owner only)")(
      "broker-ca", po::value(&opts.broker_ca_file),
      "CA certificate that signed the broker's certificate (ssl:// URIs; default: the system's CAs)")(
      "broker-cert", po::value(&opts.broker_cert_file), "client certificate for mutual TLS (ssl:// URIs)")(
      "broker-key", po::value(&opts.broker_key_file), "private key for --broker-cert")(
      "http-address", po::value(&opts.http_address)->default_value(opts.http_address), "HTTP listen address")(
      "http-port", po::value(&opts.http_port)->default_value(opts.http_port), "HTTP port (0 = any free port)")(
      "tokens-file", po::value(&tokens_file),
      "API tokens (JSON, not readable by other users); without it the API is open, on loopback only")(
      "tls-cert", po::value(&opts.tls_cert_file), "serve HTTPS with this PEM certificate chain (needs --tls-key)")(
      "tls-key", po::value(&opts.tls_key_file), "PEM private key for --tls-cert")(
      "fleet-keys", po::value(&opts.fleet_keys_file)->value_name("FILE"),
      "the fleet's public key(s) (postwatch-fleet keygen's fleet.pub): with it, operators start staged "
      "rollouts of signed bundles through /api/v1/rollouts (docs/fleet.md)")(
      "keys-dir", po::value(&keys_dir)->value_name("DIR"),
      "the aggregator's signing key and enrolment secret, made on first start (default: <data-dir>/keys; "
      "docs/security.md)")("require-signatures", po::bool_switch(&opts.require_signatures),
                           "refuse unsigned batches and states from every agent, not only from enrolled ones")(
      "key-rotation-grace-s", po::value(&rotation_grace_s)->default_value(rotation_grace_s),
      "an agent key rotated out (postwatch-agent rotate-key) stays valid this long (at least 60)")(
      "notifications", po::value(&notifications_file)->value_name("FILE"),
      "send alarm changes to webhooks as this file's routes say (JSON; docs/alerting.md)")(
      "stream-max-queue", po::value(&opts.stream_max_queue)->default_value(opts.stream_max_queue),
      "live-stream messages a client may fall behind before it is dropped")(
      "stream-max-clients", po::value(&opts.stream_max_clients)->default_value(opts.stream_max_clients),
      "live-stream (WebSocket) clients at once; further upgrade requests are refused with 503")(
      "catalogue", po::value(&catalogue_file)->value_name("FILE"),
      (std::string("indicator catalogue (JSON); default: ") + kDefaultCatalogueHelp).c_str())(
      "data-dir", po::value(&data_dir)->default_value(data_dir), "where the SQLite store lives")(
      "store-sync", po::value(&store_sync)->default_value(store_sync),
      "full: fsync every commit, so what agents are confirmed survives a power cut; normal: survives a crash of "
      "the aggregator, not of the machine")(
      "event-retention-days", po::value(&retention_days)->default_value(retention_days, "8"),
      "raw events are kept this long (at least 1; the rollups' longest window is 7 days)")(
      "store-max-mb", po::value(&store_max_mb)->default_value(store_max_mb),
      "raw events beyond this many MB of store go, oldest first, except those of the last 7 days; 0 = no cap")(
      "min-duration-s", po::value(&min_duration_s)->default_value(min_duration_s),
      "a new goal status must hold this long before it shows")(
      "allowed-lateness-s", po::value(&lateness_s)->default_value(lateness_s),
      "events observed longer ago count only where they are the newest reading")(
      "clock-correct-beyond-s", po::value(&clock_beyond_s)->default_value(clock_beyond_s),
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
      "log-level", po::value(&log_level)->default_value(log_level), "trace, debug, info, warn, error");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "postwatch-aggregator: " << e.what() << "\n(see --help)\n";
    return 2;
  }
  if (vm.count("help")) {
    std::cout << desc << "\n";
    return 0;
  }
  if (vm.count("version")) {
    std::cout << "postwatch-aggregator " << POSTWATCH_VERSION << " (wire schema v1)\n";
    return 0;
  }

  opts.data_dir = data_dir;
  if (store_sync != "full" && store_sync != "normal") {
    std::cerr << "postwatch-aggregator: --store-sync must be full or normal, not '" << store_sync << "'\n";
    return 2;
  }
  opts.store_fsync = store_sync == "full";
  if (!(retention_days >= 1)) {
    std::cerr << "postwatch-aggregator: --event-retention-days must be at least 1\n";
    return 2;
  }
  opts.event_retention_ms = static_cast<std::int64_t>(retention_days * 86'400'000.0);
  opts.store_max_bytes = store_max_mb * 1'000'000;
  opts.tokens_file = tokens_file;
  opts.notifications_file = notifications_file;
  opts.keys_dir = keys_dir;
  opts.min_duration_ms = static_cast<std::int64_t>(min_duration_s * 1000);
  opts.allowed_lateness_ms = static_cast<std::int64_t>(lateness_s * 1000);
  if (rotation_grace_s < 60) {
    std::cerr << "postwatch-aggregator: --key-rotation-grace-s must be at least 60 (the agent takes up its new key "
                 "within a few seconds, and its spooled messages are signed again when sent)\n";
    return 2;
  }
  opts.key_rotation_grace_ms = rotation_grace_s * 1000;
  opts.clock_correct_beyond_ms = clock_beyond_s * 1000;
  if (clock_beyond_s < 1) {
    std::cerr << "postwatch-aggregator: --clock-correct-beyond-s must be at least 1\n";
    return 2;
  }
  if (opts.tick_ms < 10 || opts.confirm_interval_ms < 0 || opts.min_coverage < 0 || opts.min_coverage > 1 ||
      opts.hysteresis_band < 0 || opts.missed_heartbeats < 1 || opts.stream_max_queue < 1 ||
      opts.stream_max_clients < 1 || opts.outbound_window < 1 || opts.outbound_window > 2048) {
    std::cerr << "postwatch-aggregator: --tick-ms >= 10, --confirm-interval-ms >= 0, --min-coverage in [0,1], "
                 "--hysteresis >= 0, "
                 "--missed-heartbeats >= 1, --stream-max-queue, --stream-max-clients >= 1 and --outbound-window in "
                 "[1,2048]\n";
    return 2;
  }

  if (!broker_password_file.empty()) {
    try {
      opts.broker_password = postwatch::read_secret_file(broker_password_file);
    } catch (const std::runtime_error& e) {
      std::cerr << "postwatch-aggregator: --broker-password-file: " << e.what() << "\n";
      return 2;
    }
  }
  const auto broker_uris = aggregator::split_broker_uris(opts.broker_uri);
  auto is_tls = [](const std::string& u) { return u.starts_with("ssl://") || u.starts_with("mqtts://"); };
  for (const auto& u : broker_uris) {
    if (!is_tls(u) && !u.starts_with("tcp://") && !u.starts_with("mqtt://")) {
      std::cerr << "postwatch-aggregator: --broker '" << u << "' must start with tcp://, ssl://, mqtt:// or mqtts://\n";
      return 2;
    }
    if (is_tls(u) != is_tls(broker_uris.front())) {
      std::cerr << "postwatch-aggregator: --broker lists both TLS and plaintext URIs; use one kind\n";
      return 2;
    }
  }
  bool tls = is_tls(broker_uris.front());
  if (!tls && (!opts.broker_ca_file.empty() || !opts.broker_cert_file.empty() || !opts.broker_key_file.empty())) {
    std::cerr << "postwatch-aggregator: --broker-ca/--broker-cert/--broker-key need an ssl:// --broker URI\n";
    return 2;
  }
  if (opts.broker_cert_file.empty() != opts.broker_key_file.empty()) {
    std::cerr << "postwatch-aggregator: --broker-cert and --broker-key go together\n";
    return 2;
  }

  auto log = spdlog::stderr_color_mt("aggregator");
  log->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%n] %v");
  log->set_level(spdlog::level::from_str(log_level));

  std::shared_ptr<const IndicatorCatalogue> catalogue;
  std::shared_ptr<const aggregator::TargetCatalogue> targets;
  if (catalogue_file.empty()) catalogue_file = default_catalogue_path().string();
  try {
    catalogue = std::make_shared<const IndicatorCatalogue>(IndicatorCatalogue::load(catalogue_file));
    // The strategy's targets are checked at start like the rest (docs/strategy-progress.md).
    targets = std::make_shared<const aggregator::TargetCatalogue>(
        aggregator::TargetCatalogue::load(catalogue_file, *catalogue));
  } catch (const CatalogueError& e) {
    std::cerr << "postwatch-aggregator: catalogue error: " << e.what() << "\n";
    return 2;
  }
  // A newer catalogue adopted from a fleet rollout (docs/fleet.md, "A new indicator") wins over
  // the installed one while it keeps all of it.
  {
    std::string note;
    const auto adopted = aggregator::AdoptedCatalogues(opts.data_dir / "catalogues").choose(*catalogue, note);
    if (!note.empty()) log->warn("{}", note);
    if (!adopted.empty()) {
      try {
        auto next = std::make_shared<const IndicatorCatalogue>(IndicatorCatalogue::load(adopted));
        targets =
            std::make_shared<const aggregator::TargetCatalogue>(aggregator::TargetCatalogue::load(adopted, *next));
        log->info("catalogue_version {} adopted from a fleet rollout ({}) replaces the installed {} ({})",
                  next->version(), adopted.string(), catalogue->version(), catalogue_file);
        catalogue = std::move(next);
        catalogue_file = adopted.string();
      } catch (const CatalogueError& e) {
        log->warn("the catalogue adopted from a fleet rollout ({}) is refused: {}; using the installed one",
                  adopted.string(), e.what());
      }
    }
  }
  opts.catalogue_file = catalogue_file;
  for (const auto& u : broker_uris)
    if (!tls && u.find("127.0.0.1") == std::string::npos && u.find("localhost") == std::string::npos)
      log->warn("plaintext MQTT to {}: events and passwords cross the network unencrypted; use ssl:// with --broker-ca",
                u);
  log->info("catalogue {}: {} goals, {} posts (and {} ministry), {} indicators, {} strategy targets", catalogue_file,
            catalogue->goals().size(), catalogue->posts_of_kind(PostKind::Post).size(),
            catalogue->posts_of_kind(PostKind::Ministry).size(), catalogue->indicators().size(),
            targets->targets().size());

  boost::asio::io_context io(1);
  // Installed before the service opens its store and its broker connection: a SIGTERM that
  // arrives while either is under way waits here and stops the service once it is up, rather
  // than killing the process with the default action (exit 143).
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  std::unique_ptr<aggregator::AggregatorService> service;
  try {
    service = std::make_unique<aggregator::AggregatorService>(io, opts, catalogue, log, targets);
  } catch (const std::invalid_argument& e) {
    std::cerr << "postwatch-aggregator: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "postwatch-aggregator: " << e.what() << "\n";
    return 1;
  }
  try {
    service->start();
  } catch (const std::exception& e) {
    std::cerr << "postwatch-aggregator: cannot listen on " << opts.http_address << ":" << opts.http_port << ": "
              << e.what() << "\n";
    return 1;
  }
  const std::string base =
      (service->tls() ? "https://" : "http://") + opts.http_address + ":" + std::to_string(service->http_port());
  log->info("HTTP API at {}/api/v1/goals, dashboard at {}/", base, base);
  boost::asio::steady_timer drain(io);
  std::function<void(std::chrono::steady_clock::time_point)> wait_for_streams =
      [&](std::chrono::steady_clock::time_point deadline) {
        if (service->stream_clients() == 0 || std::chrono::steady_clock::now() >= deadline) return io.stop();
        drain.expires_after(std::chrono::milliseconds(10));
        drain.async_wait([&, deadline](const boost::system::error_code&) { wait_for_streams(deadline); });
      };
  signals.async_wait([&](const boost::system::error_code&, int sig) {
    log->info("signal {}: shutting down", sig);
    service->stop();
    // Live-stream clients got a close frame; give them a moment to answer it.
    wait_for_streams(std::chrono::steady_clock::now() + std::chrono::seconds(2));
  });
  bool restart = false;
  service->on_catalogue_adopted([&] {
    log->info("restarting on the adopted catalogue");
    restart = true;
    signals.cancel();
    service->stop();
    wait_for_streams(std::chrono::steady_clock::now() + std::chrono::seconds(2));
  });
  io.run();
  if (!restart) {
    log->info("stopped");
    return 0;
  }
  // The same process, started again: systemd's unit and a supervisor see no exit. Everything
  // the old run opened is closed first (the store, the listening socket, the broker's).
  service.reset();
  log->flush();
  ::close_range(3, ~0U, 0);
  ::execv("/proc/self/exe", argv);
  std::cerr << "postwatch-aggregator: cannot restart itself: " << std::strerror(errno) << "; start it again\n";
  return 1;
}
