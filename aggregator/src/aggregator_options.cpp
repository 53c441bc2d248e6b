#include "postwatch/aggregator/aggregator_options.hpp"

#include "ingest/mqtt_ingest.hpp"

#include <string_view>
#include <vector>

namespace postwatch::aggregator {

namespace {

bool is_tls_uri(std::string_view u) { return u.starts_with("ssl://") || u.starts_with("mqtts://"); }

std::string broker_problem(const AggregatorOptions& o) {
  const auto uris = split_broker_uris(o.broker_uri);
  if (uris.empty()) return "--broker names no URI";
  for (const auto& u : uris) {
    if (!is_tls_uri(u) && !u.starts_with("tcp://") && !u.starts_with("mqtt://"))
      return "--broker '" + u + "' must start with tcp://, ssl://, mqtt:// or mqtts://";
    if (is_tls_uri(u) != is_tls_uri(uris.front())) return "--broker lists both TLS and plaintext URIs; use one kind";
  }
  const bool tls_files = !o.broker_ca_file.empty() || !o.broker_cert_file.empty() || !o.broker_key_file.empty();
  if (!is_tls_uri(uris.front()) && tls_files)
    return "--broker-ca/--broker-cert/--broker-key need an ssl:// --broker URI";
  if (o.broker_cert_file.empty() != o.broker_key_file.empty()) return "--broker-cert and --broker-key go together";
  return {};
}

std::string timing_problem(const AggregatorOptions& o) {
  if (o.tick_ms < 10) return "--tick-ms must be at least 10";
  if (o.confirm_interval_ms < 0) return "--confirm-interval-ms must be 0 (off) or more";
  if (o.min_duration_ms < 0) return "--min-duration-s must not be negative";
  if (o.allowed_lateness_ms < 0) return "--allowed-lateness-s must not be negative";
  if (o.clock_correct_beyond_ms < 1000) return "--clock-correct-beyond-s must be at least 1";
  if (o.key_rotation_grace_ms < 60'000)
    return "--key-rotation-grace-s must be at least 60 (the agent takes up its new key within a few seconds, and "
           "its spooled messages are signed again when sent)";
  if (o.event_retention_ms < 86'400'000) return "--event-retention-days must be at least 1";
  return {};
}

std::string board_problem(const AggregatorOptions& o) {
  if (!(o.min_coverage >= 0 && o.min_coverage <= 1)) return "--min-coverage must be in [0,1]";
  if (!(o.hysteresis_band >= 0)) return "--hysteresis must be 0 or more";
  if (o.missed_heartbeats < 1) return "--missed-heartbeats must be at least 1";
  return {};
}

std::string capacity_problem(const AggregatorOptions& o) {
  if (o.stream_max_queue < 1) return "--stream-max-queue must be at least 1";
  if (o.stream_max_clients < 1) return "--stream-max-clients must be at least 1";
  if (o.outbound_window < 1 || o.outbound_window > MqttIngest::kMaxInflight)
    return "--outbound-window must be 1 to " + std::to_string(MqttIngest::kMaxInflight);
  if (o.max_queued_messages < 1) return "--max-queued-messages must be at least 1";
  if (o.max_store_backlog_events < 1) return "--max-store-backlog must be at least 1";
  return {};
}

std::string cluster_problem(const AggregatorOptions& o) {
  if (o.cluster_group.empty()) return {};
  if (o.nats_servers.empty())
    return "--cluster-group needs --nats: a cluster runs on NATS JetStream (docs/scale-out.md)";
  auto name_ok = [](const std::string& s) {
    return !s.empty() &&
           s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == std::string::npos;
  };
  const std::string& instance = o.instance_id.empty() ? o.client_id : o.instance_id;
  if (!name_ok(o.cluster_group) || !name_ok(instance))
    return "--cluster-group and --instance-id may hold only letters, digits, '-' and '_' on NATS (they name its "
           "buckets and consumers)";
  if (o.nats_partitions < 1 || o.nats_partitions > 1024) return "--nats-partitions must be 1 to 1024";
  if (o.nats_replicas < 1) return "--nats-replicas must be at least 1";
  if (o.lease_ms < 1) return "--lease-ms must be at least 1";
  if (o.snapshot_interval_ms < 1) return "--snapshot-interval-ms must be at least 1";
  return {};
}

}  // namespace

std::string options_problem(const AggregatorOptions& o) {
  if (o.tls_cert_file.empty() != o.tls_key_file.empty()) return "HTTPS needs both --tls-cert and --tls-key";
  for (auto* check : {broker_problem, timing_problem, board_problem, capacity_problem, cluster_problem})
    if (auto why = check(o); !why.empty()) return why;
  return {};
}

}  // namespace postwatch::aggregator
