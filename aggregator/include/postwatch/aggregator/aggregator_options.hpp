// What an aggregator is started with, and the one place that says whether it hangs together.
// main() fills it from the command line; the tests fill it directly. Both go through
// options_problem(): the service refuses what main() would.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

namespace postwatch::aggregator {

struct AggregatorOptions {
  std::string broker_uri = "tcp://127.0.0.1:1883";
  std::string client_id = "postwatch-aggregator";
  // The broker login (tools/broker_config makes the user "postwatch-aggregator"); TLS
  // files apply to ssl:// URIs. The password is read by main() from a 0600 file.
  std::string broker_username, broker_password;
  std::string broker_ca_file, broker_cert_file, broker_key_file;
  std::string http_address = "127.0.0.1";
  unsigned short http_port = 8080;                    // 0 picks a free port
  std::filesystem::path data_dir = "postwatch-data";  // SQLite store; survives restarts
  // The file `catalogue` was loaded from, kept beside a catalogue adopted from a rollout (its
  // agents' batch dictionaries); empty: not kept.
  std::filesystem::path catalogue_file;
  std::int64_t tick_ms = 250;             // how often statuses and alarms are re-evaluated
  std::int64_t min_duration_ms = 30'000;  // a new goal status must hold this long
  std::int64_t allowed_lateness_ms = 10LL * 60 * 1000;
  // An agent clock further off than this has its event times corrected and raises a warning
  // alarm for its post (docs/aggregator.md, "Time").
  std::int64_t clock_correct_beyond_ms = 60'000;
  std::int64_t history_interval_ms = 60'000;  // a history point per goal/pillar at least this often
  double hysteresis_band = 0.1;
  double min_coverage = 0.5;
  int missed_heartbeats = 3;
  bool publish_snapshots = true;  // retained goal/pillar JSON on postwatch/v1/feed/...
  // Delivery confirmation to agents (docs/wire-format.md): how often the committed watermarks
  // go out; 0 switches it off (agents configured with delivery.confirm "broker" need none).
  std::int64_t confirm_interval_ms = 1000;
  // Messages the aggregator has handed to the MQTT client and not yet had acknowledged
  // (docs/aggregator.md, "What the aggregator publishes"); at most MqttIngest::kMaxInflight.
  std::size_t outbound_window = 256;

  // Back-pressure (docs/aggregator.md §7): MQTT delivery pauses while this many messages
  // wait for the io thread, or while this many events wait for the store's writer.
  std::size_t max_queued_messages = 4096;
  std::uint64_t max_store_backlog_events = 250'000;

  // The store (docs/aggregator.md, "The store").
  bool store_fsync = true;  // fsync every group commit: a confirmed event survives a power cut
  std::int64_t event_retention_ms = 8LL * 24 * 3600 * 1000;  // raw events; the longest window (7 d) plus a day
  std::uint64_t store_max_bytes = 0;                         // raw events beyond this go, oldest first; 0: no cap

  // Scale-out on NATS JetStream (docs/scale-out.md): instances with the same group share the
  // event partitions. Empty: one instance takes every event from the MQTT broker.
  std::string cluster_group;
  std::string instance_id;                  // default: client_id
  std::int64_t snapshot_interval_ms = 200;  // how often a held partition's changed posts are written
  std::string nats_servers;                 // nats://host:port, comma separated
  std::string nats_user, nats_password_file;
  std::uint32_t nats_partitions = 16;  // as the broker's subject mapping
  int nats_replicas = 3;
  std::int64_t lease_ms = 3'000;

  // Access (docs/operations.md). Without a tokens file the API is open, which is only
  // allowed on a loopback address.
  std::filesystem::path tokens_file;
  std::string tls_cert_file, tls_key_file;  // both set: HTTPS (and wss://) only

  // Trust (docs/security.md): where the aggregator's signing key and enrolment secret live
  // (empty: <data_dir>/keys), and whether unsigned messages are refused from every agent, not
  // only from enrolled ones.
  std::filesystem::path keys_dir;
  // The fleet's public key(s) (docs/fleet.md): rollouts of bundles they signed; empty: none.
  std::string fleet_keys_file;
  bool require_signatures = false;
  // How long an agent key rotated out stays valid (its in-flight and spooled messages).
  std::int64_t key_rotation_grace_ms = 24LL * 3600 * 1000;

  // Webhook notifications of alarm changes (docs/alerting.md); empty: none.
  std::filesystem::path notifications_file;

  // Live stream (/api/v1/stream).
  std::size_t stream_max_queue = 256;  // a client further behind is dropped
  std::size_t stream_max_clients = 64;
  std::int64_t stream_idle_timeout_ms = 30'000;  // ping at half; drop a client silent for all of it
  std::int64_t stream_update_ms = 1'000;         // score/coverage updates per goal at most this often
};

// Empty when `o` can be run; otherwise why not, naming the command-line option (e.g.
// "--tick-ms must be at least 10"). Checks values only: files are read where they are used.
std::string options_problem(const AggregatorOptions& o);

}  // namespace postwatch::aggregator
