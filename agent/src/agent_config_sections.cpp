// AgentConfig::parse_text: the config file read section by section (docs/agent.md,
// "Configuration"), every problem recorded; the input sections are in agent_config_inputs.cpp.
#include "agent_config_parts.hpp"

#include "postwatch/agent/broker_route.hpp"
#include "postwatch/agent/spool_key.hpp"
#include "postwatch/catalogue.hpp"

#include <algorithm>
#include <cstdio>
#include <functional>

namespace postwatch::agent {
using nlohmann::json;

namespace {

// The top level: the broker, who this agent is, its login, the catalogue.
void parse_top_level(const std::filesystem::path& file, const json& root, FieldReader& r, AgentConfig& c) {
  r.str(root, "", "broker_uri", c.broker_uri);
  r.str(root, "", "agent_id", c.agent_id, true);
  r.str(root, "", "post_id", c.post_id, true);
  r.str(root, "", "username", c.username);
  r.str(root, "", "password_file", c.password_file);
  c.password_file = resolve_config_path(file, c.password_file);
  r.boolean(root, "", "allow_plaintext", c.allow_plaintext);
  std::string catalogue;
  r.str(root, "", "catalogue_file", catalogue);
  if (!catalogue.empty()) c.catalogue_file = file.parent_path() / catalogue;
}

// "spool": where events wait until released; encrypted unless key_file is "" (docs/agent.md,
// "Encryption at rest").
void parse_spool(const std::filesystem::path& file, const json& root, FieldReader& r, AgentConfig& c) {
  if (const json* spool = r.section(root, "spool",
                                    {"dir", "key_file", "max_bytes", "max_events", "max_age_s", "segment_bytes",
                                     "fsync", "fsync_interval_ms", "overflow"})) {
    std::string path;
    r.str(*spool, "spool.", "dir", path);
    if (!path.empty()) c.spool.dir = file.parent_path() / path;
    if (FieldReader::find(*spool, "key_file")) {  // "" turns encryption off
      path.clear();
      r.str(*spool, "spool.", "key_file", path);
      c.spool.key_file = resolve_config_path(file, path);
    }
    r.uint(*spool, "spool.", "max_bytes", c.spool.max_bytes, std::int64_t{64} * 1024, std::int64_t{1} << 42);
    r.uint(*spool, "spool.", "max_events", c.spool.max_events, 0, std::int64_t{1} << 40);
    std::int64_t age = c.spool.max_age.count();
    r.uint(*spool, "spool.", "max_age_s", age, 0, std::int64_t{10} * 365 * 86400);
    c.spool.max_age = std::chrono::seconds(age);
    r.uint(*spool, "spool.", "segment_bytes", c.spool.segment_bytes, std::int64_t{16} * 1024, std::int64_t{1} << 30);
    std::string fsync;
    r.str(*spool, "spool.", "fsync", fsync);
    if (fsync == "every_record")
      c.spool.fsync = FsyncPolicy::EveryRecord;
    else if (fsync == "interval" || fsync.empty())
      c.spool.fsync = FsyncPolicy::Interval;
    else if (fsync == "never")
      c.spool.fsync = FsyncPolicy::Never;
    else
      r.fail("spool.fsync", "must be every_record, interval or never");
    std::int64_t interval = c.spool.fsync_interval.count();
    r.uint(*spool, "spool.", "fsync_interval_ms", interval, 1, 60000);
    c.spool.fsync_interval = std::chrono::milliseconds(interval);
    std::string overflow;
    r.str(*spool, "spool.", "overflow", overflow);
    if (overflow == "refuse" || overflow.empty())
      c.spool.overflow = OverflowPolicy::Refuse;
    else if (overflow == "drop_oldest")
      c.spool.overflow = OverflowPolicy::DropOldest;
    else if (overflow == "drop_oldest_non_urgent")
      c.spool.overflow = OverflowPolicy::DropOldestNonUrgent;
    else
      r.fail("spool.overflow", "must be refuse, drop_oldest or drop_oldest_non_urgent");
  }
  const json* spool_keys = FieldReader::find(root, "spool");
  if (!spool_keys || !spool_keys->is_object() || !spool_keys->contains("key_file"))
    c.spool.key_file = default_spool_key_file(c.spool.dir);
}

// agent_id and post_id name topics: a restricted alphabet.
void check_node_ids(const json& root, FieldReader& r, const AgentConfig& c) {
  if (root.contains("agent_id") && root["agent_id"].is_string() && !is_valid_node_id(c.agent_id))
    r.fail("agent_id", "must match ^[a-z0-9][a-z0-9-]{0,47}$");
  if (root.contains("post_id") && root["post_id"].is_string() && !is_valid_node_id(c.post_id))
    r.fail("post_id", "must match ^[a-z0-9][a-z0-9-]{0,47}$");
}

// broker_uri and broker_fallbacks: known schemes, all TLS or all plaintext, none twice.
void parse_brokers(const json& root, FieldReader& r, AgentConfig& c) {
  auto known_uri = [](const std::string& u) { return is_tls_broker_uri(u) || is_plaintext_broker_uri(u); };
  const char* schemes = "must start with tcp://, ssl://, mqtt://, mqtts://, ws:// or wss://";
  if (!known_uri(c.broker_uri)) r.fail("broker_uri", schemes);
  if (const json* list = FieldReader::find(root, "broker_fallbacks")) {
    if (!list->is_array()) r.fail("broker_fallbacks", "must be an array of broker URIs");
    for (std::size_t i = 0; list->is_array() && i < list->size(); ++i) {
      const std::string field = "broker_fallbacks[" + std::to_string(i) + "]";
      if (!(*list)[i].is_string()) {
        r.fail(field, "must be a string");
        continue;
      }
      const auto uri = (*list)[i].get<std::string>();
      if (!known_uri(uri))
        r.fail(field, schemes);
      else if (is_tls_broker_uri(uri) != is_tls_broker_uri(c.broker_uri))
        r.fail(field, uri +
                          (is_tls_broker_uri(c.broker_uri) ? " is plaintext but broker_uri uses TLS"
                                                           : " uses TLS but broker_uri is plaintext") +
                          ": one tls section serves every broker, so they must agree");
      else if (uri == c.broker_uri || std::count(c.broker_fallbacks.begin(), c.broker_fallbacks.end(), uri))
        r.fail(field, uri + " is listed twice");
      c.broker_fallbacks.push_back(uri);
    }
  }
}

void parse_tls(const std::filesystem::path& file, const json& root, FieldReader& r, AgentConfig& c) {
  if (const json* tls = r.section(root, "tls", {"enabled", "ca_file", "cert_file", "key_file", "verify_hostname"})) {
    c.tls.enabled = true;
    r.boolean(*tls, "tls.", "enabled", c.tls.enabled);
    r.str(*tls, "tls.", "ca_file", c.tls.ca_file);
    r.str(*tls, "tls.", "cert_file", c.tls.cert_file);
    r.str(*tls, "tls.", "key_file", c.tls.key_file);
    r.boolean(*tls, "tls.", "verify_hostname", c.tls.verify_hostname);
    c.tls.ca_file = resolve_config_path(file, c.tls.ca_file);
    c.tls.cert_file = resolve_config_path(file, c.tls.cert_file);
    c.tls.key_file = resolve_config_path(file, c.tls.key_file);
  }
}

void parse_batch(const json& root, FieldReader& r, AgentConfig& c) {
  if (const json* batch = r.section(root, "batch", {"max_events", "max_delay_ms", "max_inflight"})) {
    r.uint(*batch, "batch.", "max_events", c.batch_max_events, 1, 10000);
    std::int64_t delay = c.batch_max_delay.count();
    r.uint(*batch, "batch.", "max_delay_ms", delay, 0, 60000);
    c.batch_max_delay = std::chrono::milliseconds(delay);
    r.uint(*batch, "batch.", "max_inflight", c.max_inflight_batches, 1, 1000);
  }
}

void parse_uplink(const json& root, FieldReader& r, AgentConfig& c) {
  if (const json* uplink = r.section(root, "uplink", {"compression", "max_kbit_s", "proxy"})) {
    r.uint(*uplink, "uplink.", "max_kbit_s", c.uplink_max_kbit_s, 0, 10'000'000);
    r.str(*uplink, "uplink.", "proxy", c.uplink_proxy);
    std::string why;
    if (!c.uplink_proxy.empty() && !parse_proxy_url(c.uplink_proxy, why)) r.fail("uplink.proxy", why);
    std::string compression;
    r.str(*uplink, "uplink.", "compression", compression);
    if (!compression.empty() && !parse_batch_compression(compression, c.compression))
      r.fail("uplink.compression", "must be none, zstd or zstd-dictionary");
  }
}

void parse_identity(const std::filesystem::path& file, const json& root, FieldReader& r, AgentConfig& c) {
  // Enrolment writes both (docs/security.md); by default beside the spool directory.
  c.identity.key_file = c.spool.dir.parent_path() / "agent.key";
  c.identity.aggregator_key_file = c.spool.dir.parent_path() / "aggregator.pub";
  if (const json* id = r.section(root, "identity", {"key_file", "aggregator_key_file", "pkcs11"})) {
    std::string key, aggregator;
    r.str(*id, "identity.", "key_file", key);
    r.str(*id, "identity.", "aggregator_key_file", aggregator);
    if (!key.empty()) c.identity.key_file = resolve_config_path(file, key);
    if (!aggregator.empty()) c.identity.aggregator_key_file = resolve_config_path(file, aggregator);
    if (const json* p11 = FieldReader::find(*id, "pkcs11")) {
      auto& t = c.identity.pkcs11;
      if (!p11->is_object()) {
        r.fail("identity.pkcs11", "must be an object (module, token, pin_file)");
      } else {
        r.unknown_keys(*p11, "identity.pkcs11.", {"module", "token", "pin_file"});
        std::string module, pin;
        r.str(*p11, "identity.pkcs11.", "module", module);
        r.str(*p11, "identity.pkcs11.", "token", t.token);
        r.str(*p11, "identity.pkcs11.", "pin_file", pin);
        for (auto [name, value] : {std::pair{"module", &module}, {"token", &t.token}, {"pin_file", &pin}})
          if (value->empty()) r.fail(std::string("identity.pkcs11.") + name, "must be set");
        if (!module.empty()) t.module = resolve_config_path(file, module);
        if (!pin.empty()) t.pin_file = resolve_config_path(file, pin);
      }
    }
  }
}

void parse_delivery(const json& root, FieldReader& r, AgentConfig& c) {
  if (const json* delivery = r.section(root, "delivery", {"confirm"})) {
    std::string confirm;
    r.str(*delivery, "delivery.", "confirm", confirm);
    if (confirm == "aggregator" || confirm.empty())
      c.confirm = DeliveryConfirmMode::Aggregator;
    else if (confirm == "broker")
      c.confirm = DeliveryConfirmMode::Broker;
    else
      r.fail("delivery.confirm", "must be aggregator or broker");
  }
}

// The heartbeat, the MQTT keep-alive and the in-memory queue.
void parse_timing(const json& root, FieldReader& r, AgentConfig& c) {
  std::int64_t hb = c.heartbeat_interval.count(), ka = c.keep_alive.count();
  r.uint(root, "", "heartbeat_interval_s", hb, 1, 3600);
  r.uint(root, "", "keep_alive_s", ka, 2, 3600);
  c.heartbeat_interval = std::chrono::seconds(hb);
  c.keep_alive = std::chrono::seconds(ka);
  r.uint(root, "", "queue_max_events", c.queue_max_events, 1, 100'000'000);
}

void parse_fleet(const std::filesystem::path& file, const json& root, FieldReader& r, AgentConfig& c) {
  c.fleet.state_dir = c.spool.dir.parent_path() / "fleet";
  if (const json* fleet = r.section(root, "fleet", {"key_file", "state_dir", "allow_scripts"})) {
    std::string key, state;
    r.str(*fleet, "fleet.", "key_file", key);
    r.str(*fleet, "fleet.", "state_dir", state);
    r.boolean(*fleet, "fleet.", "allow_scripts", c.fleet.allow_scripts);
    if (!key.empty()) c.fleet.key_file = resolve_config_path(file, key);
    if (!state.empty()) c.fleet.state_dir = resolve_config_path(file, state);
  }
}

}  // namespace

AgentConfig AgentConfig::parse_text(const std::filesystem::path& file, const std::string& text,
                                    std::vector<ConfigProblem>& problems) {
  AgentConfig c;
  FieldReader r(problems);
  json root;
  try {
    root = json::parse(text);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for 1e999
    r.fail("", std::string("not valid JSON: ") + e.what());
    return c;
  }
  if (!root.is_object()) {
    r.fail("", "expected a JSON object");
    return c;
  }
  char hash[17];
  std::snprintf(hash, sizeof hash, "%016zx", std::hash<std::string>{}(text));
  c.config_hash = hash;

  r.unknown_keys(root, "",
                 {"broker_uri",   "broker_fallbacks", "agent_id",       "post_id",  "username",  "password_file",
                  "tls",          "allow_plaintext",  "catalogue_file", "spool",    "batch",     "heartbeat_interval_s",
                  "keep_alive_s", "queue_max_events", "delivery",       "identity", "local_api", "drop_dir",
                  "probes",       "scripts",          "uplink",         "fleet"});
  // In this order: a problem list reads top to bottom, and the identity and fleet defaults
  // sit beside the spool directory.
  parse_top_level(file, root, r, c);
  parse_spool(file, root, r, c);
  check_node_ids(root, r, c);
  parse_brokers(root, r, c);
  parse_tls(file, root, r, c);
  parse_batch(root, r, c);
  parse_uplink(root, r, c);
  parse_identity(file, root, r, c);
  parse_delivery(root, r, c);
  parse_timing(root, r, c);
  parse_fleet(file, root, r, c);
  parse_inputs(file, root, r, c);
  return c;
}

}  // namespace postwatch::agent
