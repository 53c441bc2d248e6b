#include "postwatch/agent/agent_config.hpp"

#include "postwatch/agent/broker_route.hpp"
#include "postwatch/agent/bundle_overlay.hpp"
#include "postwatch/agent/spool_key.hpp"
#include "postwatch/agent/tls_diagnostics.hpp"
#include "postwatch/catalogue.hpp"
#include "postwatch/fleet_bundle.hpp"
#include "postwatch/secret_file.hpp"

#include <nlohmann/json.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace postwatch::agent {
using nlohmann::json;

namespace {

// Reads fields and records every problem instead of stopping at the first one.
class FieldReader {
 public:
  explicit FieldReader(std::vector<ConfigProblem>& problems) : problems_(problems) {}

  void fail(const std::string& field, const std::string& what) { problems_.push_back({field, what, false}); }
  static const json* find(const json& obj, const char* key) {
    auto it = obj.find(key);
    return it == obj.end() ? nullptr : &*it;
  }
  void str(const json& obj, const std::string& path, const char* key, std::string& out, bool required = false) {
    const json* v = find(obj, key);
    if (!v) {
      if (required) fail(path + key, "missing (required)");
      return;
    }
    if (!v->is_string()) return fail(path + key, "must be a string");
    out = v->get<std::string>();
  }
  template <typename Int>
  void uint(const json& obj, const std::string& path, const char* key, Int& out, std::int64_t lo, std::int64_t hi) {
    const json* v = find(obj, key);
    if (!v) return;
    if (!v->is_number_integer()) return fail(path + key, "must be a whole number");
    auto n = v->get<std::int64_t>();
    if (n < lo || n > hi)
      return fail(path + key, "must be between " + std::to_string(lo) + " and " + std::to_string(hi));
    out = static_cast<Int>(n);
  }
  void boolean(const json& obj, const std::string& path, const char* key, bool& out) {
    const json* v = find(obj, key);
    if (!v) return;
    if (!v->is_boolean()) return fail(path + key, "must be true or false");
    out = v->get<bool>();
  }
  // A section that must be an object and may only hold `known` keys; null if absent or not an object.
  const json* section(const json& root, const char* key, const std::vector<std::string>& known) {
    const json* s = find(root, key);
    if (!s) return nullptr;
    if (!s->is_object()) {
      fail(key, "must be an object");
      return nullptr;
    }
    unknown_keys(*s, std::string(key) + ".", known);
    return s;
  }
  void unknown_keys(const json& obj, const std::string& path, const std::vector<std::string>& known) {
    for (const auto& [k, _] : obj.items())
      if (std::find(known.begin(), known.end(), k) == known.end()) {
        std::string hint;
        for (const auto& candidate : known) {
          if (!hint.empty()) hint += ", ";
          hint += candidate;
        }
        fail(path + k, "unknown setting (known here: " + hint + ")");
      }
  }

 private:
  std::vector<ConfigProblem>& problems_;
};

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

// Paths in the file are relative to the file's directory.
std::string resolve(const std::filesystem::path& file, const std::string& path) {
  if (path.empty()) return path;
  return (file.parent_path() / path).string();
}

// Empty if this user can create or write the spool directory, otherwise why not.
std::string spool_dir_problem(const std::filesystem::path& dir) {
  std::error_code ec;
  auto p = std::filesystem::absolute(dir, ec);
  if (ec) p = dir;
  if (std::filesystem::exists(p, ec)) {
    if (!std::filesystem::is_directory(p, ec)) return p.string() + " exists and is not a directory";
    if (::access(p.c_str(), W_OK | X_OK) != 0)
      return p.string() + " is not writable by uid " + std::to_string(::geteuid()) + ": " + std::strerror(errno);
    return "";
  }
  // Missing: the agent creates it, so the nearest existing parent must be writable.
  auto parent = p.parent_path();
  while (!parent.empty() && !std::filesystem::exists(parent, ec) && parent != parent.parent_path())
    parent = parent.parent_path();
  if (!std::filesystem::is_directory(parent, ec))
    return p.string() + " cannot be created: " + parent.string() + " is not a directory";
  if (::access(parent.c_str(), W_OK | X_OK) != 0)
    return p.string() + " does not exist and cannot be created: " + parent.string() + " is not writable by uid " +
           std::to_string(::geteuid());
  return "";
}

std::chrono::seconds seconds_field(FieldReader& r, const json& obj, const std::string& path, const char* key,
                                   std::chrono::seconds def, std::int64_t lo, std::int64_t hi) {
  std::int64_t n = def.count();
  r.uint(obj, path, key, n, lo, hi);
  return std::chrono::seconds(n);
}

// The optional input sections: local_api, drop_dir, probes, scripts. A section that is present
// is enabled unless it says "enabled": false.
void parse_inputs(const std::filesystem::path& file, const json& root, FieldReader& r, AgentConfig& c) {
  std::string path;
  if (const json* api = r.section(root, "local_api", {"enabled", "socket", "mode", "max_batch_events"})) {
    c.local_api.enabled = true;
    r.boolean(*api, "local_api.", "enabled", c.local_api.enabled);
    path.clear();
    r.str(*api, "local_api.", "socket", path);
    if (!path.empty()) c.local_api.socket = resolve(file, path);
    std::string mode;
    r.str(*api, "local_api.", "mode", mode);
    if (!mode.empty()) {
      char* end = nullptr;
      unsigned long m = std::strtoul(mode.c_str(), &end, 8);
      if (*end != '\0' || m > 0777 || mode.size() > 4)
        r.fail("local_api.mode", "must be an octal file mode such as \"0660\" (got \"" + mode + "\")");
      else
        c.local_api.mode = static_cast<unsigned>(m);
    }
    r.uint(*api, "local_api.", "max_batch_events", c.local_api.max_batch_events, 1, 100000);
  }
  if (const json* drop = r.section(root, "drop_dir", {"enabled", "path", "poll_s", "min_age_s", "max_file_bytes"})) {
    c.drop_dir.enabled = true;
    r.boolean(*drop, "drop_dir.", "enabled", c.drop_dir.enabled);
    path.clear();
    r.str(*drop, "drop_dir.", "path", path, c.drop_dir.enabled);
    if (!path.empty()) c.drop_dir.dir = resolve(file, path);
    c.drop_dir.poll_interval = seconds_field(r, *drop, "drop_dir.", "poll_s", c.drop_dir.poll_interval, 1, 3600);
    c.drop_dir.min_age = seconds_field(r, *drop, "drop_dir.", "min_age_s", c.drop_dir.min_age, 0, 3600);
    r.uint(*drop, "drop_dir.", "max_file_bytes", c.drop_dir.max_file_bytes, 1, std::int64_t{1} << 32);
  }
  if (const json* probes = r.section(
          root, "probes",
          {"enabled", "interval_s", "cpu", "memory", "disk", "uptime", "uplink", "clock", "uplink_timeout_ms"})) {
    auto& p = c.probes;
    p.enabled = true;
    r.boolean(*probes, "probes.", "enabled", p.enabled);
    p.interval = seconds_field(r, *probes, "probes.", "interval_s", p.interval, 1, 86400);
    r.boolean(*probes, "probes.", "cpu", p.cpu);
    r.boolean(*probes, "probes.", "memory", p.memory);
    r.boolean(*probes, "probes.", "disk", p.disk);
    r.boolean(*probes, "probes.", "uptime", p.uptime);
    r.boolean(*probes, "probes.", "uplink", p.uplink);
    r.boolean(*probes, "probes.", "clock", p.clock);
    std::int64_t timeout = p.uplink_timeout.count();
    r.uint(*probes, "probes.", "uplink_timeout_ms", timeout, 100, 60000);
    p.uplink_timeout = std::chrono::milliseconds(timeout);
  }
  const json* scripts = FieldReader::find(root, "scripts");
  if (!scripts) return;
  if (!scripts->is_array()) return r.fail("scripts", "must be an array of {\"indicator\", \"command\", ...}");
  for (std::size_t i = 0; i < scripts->size(); ++i) {
    const json& s = (*scripts)[i];
    std::string at = "scripts[" + std::to_string(i) + "].";
    if (!s.is_object()) {
      r.fail(at.substr(0, at.size() - 1), "must be an object");
      continue;
    }
    r.unknown_keys(s, at, {"indicator", "command", "interval_s", "timeout_s"});
    ScriptProbeConfig sc;
    r.str(s, at, "indicator", sc.indicator, true);
    const json* cmd = FieldReader::find(s, "command");
    if (!cmd) {
      r.fail(at + "command", "missing (required)");
    } else if (!cmd->is_array() || cmd->empty() ||
               !std::all_of(cmd->begin(), cmd->end(), [](const json& a) { return a.is_string(); }) ||
               (*cmd)[0].get<std::string>().empty()) {
      r.fail(at + "command", "must be a non-empty array of strings: the program and its arguments (no shell)");
    } else {
      for (const auto& a : *cmd) sc.command.push_back(a.get<std::string>());
      // A program named with a path is resolved like the config's other paths; a bare name is looked up in PATH.
      if (sc.command[0].find('/') != std::string::npos) sc.command[0] = resolve(file, sc.command[0]);
    }
    sc.interval = seconds_field(r, s, at, "interval_s", sc.interval, 1, 86400);
    sc.timeout = seconds_field(r, s, at, "timeout_s", sc.timeout, 1, 3600);
    if (sc.timeout > sc.interval)
      r.fail(at + "timeout_s", "must not exceed interval_s (" + std::to_string(sc.interval.count()) + ")");
    c.scripts.push_back(std::move(sc));
  }
}

// Problems of the input sections that need the catalogue or the file system.
void check_inputs(const AgentConfig& c, const IndicatorCatalogue* catalogue, std::vector<ConfigProblem>& problems) {
  if (c.local_api.enabled) {
    auto parent = std::filesystem::absolute(c.local_api.socket).parent_path();
    if (auto why = spool_dir_problem(parent); !why.empty())
      problems.push_back({"local_api.socket", "cannot create the socket " + c.local_api.socket.string() + ": " + why});
  }
  if (c.drop_dir.enabled)
    if (auto why = spool_dir_problem(c.drop_dir.dir); !why.empty()) problems.push_back({"drop_dir.path", why});
  for (std::size_t i = 0; i < c.scripts.size(); ++i) {
    const auto& s = c.scripts[i];
    std::string at = "scripts[" + std::to_string(i) + "].";
    if (catalogue && !s.indicator.empty() && !catalogue->find_indicator(s.indicator))
      problems.push_back({at + "indicator", "'" + s.indicator + "' is not an indicator in the catalogue"});
    if (!s.command.empty() && s.command[0].find('/') != std::string::npos && ::access(s.command[0].c_str(), X_OK) != 0)
      problems.push_back({at + "command", s.command[0] + " is not an executable file: " + std::strerror(errno)});
  }
}

}  // namespace

std::string secret_file_exposure(const std::filesystem::path& file) { return postwatch::secret_file_exposure(file); }

std::string read_secret_file(const std::filesystem::path& file) {
  try {
    return postwatch::read_secret_file(file);
  } catch (const std::runtime_error& e) {
    throw ConfigError(std::string("password_file: ") + e.what());
  }
}

bool AgentConfig::uses_tls() const {
  return starts_with(broker_uri, "ssl://") || starts_with(broker_uri, "mqtts://") || starts_with(broker_uri, "wss://");
}

std::vector<std::string> AgentConfig::brokers() const {
  std::vector<std::string> out{broker_uri};
  out.insert(out.end(), broker_fallbacks.begin(), broker_fallbacks.end());
  return out;
}

std::vector<ConfigProblem> AgentConfig::check_consistency() const {
  std::vector<ConfigProblem> out;
  bool plaintext =
      starts_with(broker_uri, "tcp://") || starts_with(broker_uri, "mqtt://") || starts_with(broker_uri, "ws://");
  if (plaintext && !allow_plaintext)
    out.push_back({"broker_uri", "plaintext " + broker_uri +
                                     " needs \"allow_plaintext\": true (or use ssl:// or wss:// with a tls section)"});
  if (plaintext && tls.enabled)
    out.push_back({"tls", "a tls section is set but broker_uri " + broker_uri +
                              " is plaintext; use ssl://host:8883 (or mqtts://, or wss:// for WebSockets) to connect "
                              "with TLS"});
  if (uses_tls() && !tls.enabled)
    out.push_back({"tls", "broker_uri " + broker_uri +
                              " uses TLS and needs a tls section (at least \"ca_file\", the CA of the broker)"});
  if (tls.enabled && !tls.key_file.empty() && tls.cert_file.empty())
    out.push_back({"tls.key_file", "is set without tls.cert_file (the client certificate it belongs to)"});
  if (!password_file.empty() && username.empty())
    out.push_back({"password_file", "is set without username (the broker login it belongs to)"});
  return out;
}

namespace {

// The top level: the broker, who this agent is, its login, the catalogue.
void parse_top_level(const std::filesystem::path& file, const json& root, FieldReader& r, AgentConfig& c) {
  r.str(root, "", "broker_uri", c.broker_uri);
  r.str(root, "", "agent_id", c.agent_id, true);
  r.str(root, "", "post_id", c.post_id, true);
  r.str(root, "", "username", c.username);
  r.str(root, "", "password_file", c.password_file);
  c.password_file = resolve(file, c.password_file);
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
      c.spool.key_file = resolve(file, path);
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
  auto tls_uri = [](const std::string& u) {
    return starts_with(u, "ssl://") || starts_with(u, "mqtts://") || starts_with(u, "wss://");
  };
  auto known_uri = [&](const std::string& u) {
    return tls_uri(u) || starts_with(u, "tcp://") || starts_with(u, "mqtt://") || starts_with(u, "ws://");
  };
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
      else if (tls_uri(uri) != tls_uri(c.broker_uri))
        r.fail(field, uri +
                          (tls_uri(c.broker_uri) ? " is plaintext but broker_uri uses TLS"
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
    c.tls.ca_file = resolve(file, c.tls.ca_file);
    c.tls.cert_file = resolve(file, c.tls.cert_file);
    c.tls.key_file = resolve(file, c.tls.key_file);
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
    if (!key.empty()) c.identity.key_file = resolve(file, key);
    if (!aggregator.empty()) c.identity.aggregator_key_file = resolve(file, aggregator);
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
        if (!module.empty()) t.module = resolve(file, module);
        if (!pin.empty()) t.pin_file = resolve(file, pin);
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
    if (!key.empty()) c.fleet.key_file = resolve(file, key);
    if (!state.empty()) c.fleet.state_dir = resolve(file, state);
  }
}

bool read_text(const std::filesystem::path& file, std::string& out, std::vector<ConfigProblem>& problems) {
  std::ifstream in(file);
  if (!in) {
    problems.push_back({"", std::string("cannot open config file: ") + std::strerror(errno)});
    return false;
  }
  std::stringstream text;
  text << in.rdbuf();
  out = text.str();
  return true;
}
}  // namespace

AgentConfig AgentConfig::parse(const std::filesystem::path& file, std::vector<ConfigProblem>& problems) {
  std::string text;
  if (!read_text(file, text, problems)) return AgentConfig{};
  return parse_text(file, text, problems);
}

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

AgentConfig AgentConfig::load(const std::filesystem::path& file) {
  std::vector<ConfigProblem> problems;
  AgentConfig c = parse(file, problems);
  if (!problems.empty()) {
    ConfigCheck check;
    check.file = file;
    check.problems = std::move(problems);
    throw ConfigError(check.describe_all());
  }
  return c;
}

ConfigCheck AgentConfig::validate(const std::filesystem::path& file, const std::filesystem::path& default_catalogue,
                                  const ConfigOverride& over) {
  ConfigCheck check;
  check.file = file;
  std::string text;
  if (!read_text(file, text, check.problems)) return check;
  if (!over.overlay.empty()) {
    text = apply_config_overlay(text, over.overlay, check.problems);
    if (text.empty()) return check;
  }
  AgentConfig c = parse_text(file, text, check.problems);
  if (c.config_hash.empty()) return check;  // not a JSON object: nothing else to look at
  auto& problems = check.problems;
  for (auto& p : c.check_consistency()) problems.push_back(std::move(p));

  auto catalogue_file = c.catalogue_file.empty() ? default_catalogue : c.catalogue_file;
  if (!over.catalogue.empty()) {
    try {
      check.catalogue = std::make_shared<const IndicatorCatalogue>(
          IndicatorCatalogue::parse(over.catalogue, over.catalogue_origin.empty() ? "bundle" : over.catalogue_origin));
      if (!c.post_id.empty() && !check.catalogue->find_post(c.post_id))
        problems.push_back(
            {"catalogue", "'" + c.post_id + "' is not a post in the catalogue of " + over.catalogue_origin});
    } catch (const std::exception& e) {
      problems.push_back({"catalogue", over.catalogue_origin + ": " + e.what()});
    }
  } else if (catalogue_file.empty()) {
    problems.push_back({"catalogue_file", "not set and no default catalogue installed"});
  } else {
    try {
      check.catalogue = std::make_shared<const IndicatorCatalogue>(IndicatorCatalogue::load(catalogue_file));
      if (!c.post_id.empty() && !check.catalogue->find_post(c.post_id))
        problems.push_back(
            {"post_id", "'" + c.post_id + "' is not a post in the catalogue " + catalogue_file.string()});
    } catch (const std::exception& e) {
      problems.push_back({"catalogue_file", std::string("catalogue ") + catalogue_file.string() + ": " + e.what()});
    }
  }

  if (!c.password_file.empty()) {
    try {
      read_secret_file(c.password_file);
    } catch (const ConfigError& e) {
      std::string what = e.what();
      problems.push_back({"password_file", what.substr(std::strlen("password_file: "))});
    }
  }
  if (c.tls.enabled)
    for (auto& p : check_tls_files(c.tls)) problems.push_back(std::move(p));
  if (const auto& t = c.identity.pkcs11; t.enabled()) {
    if (std::error_code ec; !std::filesystem::is_regular_file(t.module, ec))
      problems.push_back({"identity.pkcs11.module", "no such file: " + t.module.string() +
                                                        " (the token vendor's PKCS#11 library, e.g. libsofthsm2.so)"});
    if (!t.pin_file.empty()) try {
        read_secret_file(t.pin_file);
      } catch (const ConfigError& e) {
        std::string what = e.what();
        problems.push_back({"identity.pkcs11.pin_file", what.substr(std::strlen("password_file: "))});
      }
  }
  const std::string spool_why = spool_dir_problem(c.spool.dir);
  if (!spool_why.empty()) problems.push_back({"spool.dir", spool_why});
  if (!c.spool.key_file.empty()) {
    if (auto why = spool_key_file_problem(c.spool.key_file); !why.empty()) {
      problems.push_back({"spool.key_file", why});
    } else if (std::error_code ec; spool_why.empty() && !std::filesystem::exists(c.spool.key_file, ec)) {
      // The agent creates the key at its first start: its directory must allow that.
      auto parent = std::filesystem::absolute(c.spool.key_file, ec).parent_path();
      if (auto dir_why = spool_dir_problem(parent); !dir_why.empty())
        problems.push_back({"spool.key_file", "cannot create " + c.spool.key_file.string() + ": " + dir_why});
    }
  }
  check_inputs(c, check.catalogue.get(), problems);
  if (c.fleet.enabled()) {
    try {
      load_fleet_keys(c.fleet.key_file.string());
    } catch (const std::exception& e) {
      problems.push_back({"fleet.key_file", e.what()});
    }
    if (auto why = spool_dir_problem(c.fleet.state_dir); !why.empty()) problems.push_back({"fleet.state_dir", why});
  }

  check.config = std::move(c);
  return check;
}

bool ConfigCheck::ok() const { return errors() == 0; }

std::size_t ConfigCheck::errors() const {
  return static_cast<std::size_t>(
      std::count_if(problems.begin(), problems.end(), [](const ConfigProblem& p) { return !p.warning; }));
}

std::string ConfigCheck::describe(const ConfigProblem& p) const {
  std::string s = file.string() + ": ";
  if (p.warning) s += "warning: ";
  if (!p.field.empty()) s += p.field + ": ";
  return s + p.message;
}

std::string ConfigCheck::describe_all() const {
  std::string out;
  for (bool warnings : {false, true})
    for (const auto& p : problems)
      if (p.warning == warnings) {
        if (!out.empty()) out += '\n';
        out += describe(p);
      }
  return out;
}

}  // namespace postwatch::agent
