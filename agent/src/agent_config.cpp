#include "postwatch/agent/agent_config.hpp"

#include "postwatch/catalogue.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <sstream>

namespace postwatch::agent {
using nlohmann::json;

namespace {

class FieldReader {
 public:
  FieldReader(const json& root, std::string origin) : root_(root), origin_(std::move(origin)) {}

  [[noreturn]] void fail(const std::string& field, const std::string& what) const {
    throw ConfigError(origin_ + ": " + field + ": " + what);
  }
  const json* find(const json& obj, const char* key) const {
    auto it = obj.find(key);
    return it == obj.end() ? nullptr : &*it;
  }
  void str(const json& obj, const std::string& path, const char* key, std::string& out, bool required = false) const {
    const json* v = find(obj, key);
    if (!v) {
      if (required) fail(path + key, "missing (required)");
      return;
    }
    if (!v->is_string()) fail(path + key, "must be a string");
    out = v->get<std::string>();
  }
  template <typename Int>
  void uint(const json& obj, const std::string& path, const char* key, Int& out, std::int64_t lo,
            std::int64_t hi) const {
    const json* v = find(obj, key);
    if (!v) return;
    if (!v->is_number_integer()) fail(path + key, "must be a whole number");
    auto n = v->get<std::int64_t>();
    if (n < lo || n > hi) fail(path + key, "must be between " + std::to_string(lo) + " and " + std::to_string(hi));
    out = static_cast<Int>(n);
  }
  void boolean(const json& obj, const std::string& path, const char* key, bool& out) const {
    const json* v = find(obj, key);
    if (!v) return;
    if (!v->is_boolean()) fail(path + key, "must be true or false");
    out = v->get<bool>();
  }
  const json& root() const { return root_; }

 private:
  const json& root_;
  std::string origin_;
};

}  // namespace

AgentConfig AgentConfig::load(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) throw ConfigError(file.string() + ": cannot open config file");
  std::stringstream text;
  text << in.rdbuf();
  json root;
  try {
    root = json::parse(text.str());
  } catch (const json::parse_error& e) {
    throw ConfigError(file.string() + ": not valid JSON: " + e.what());
  }
  if (!root.is_object()) throw ConfigError(file.string() + ": expected a JSON object");
  FieldReader r(root, file.string());
  static const std::vector<std::string> known = {
      "broker_uri",      "agent_id",       "post_id", "username", "password_file",        "tls",
      "allow_plaintext", "catalogue_file", "spool",   "batch",    "heartbeat_interval_s", "keep_alive_s",
      "queue_max_events"};
  for (const auto& [key, _] : root.items())
    if (std::find(known.begin(), known.end(), key) == known.end()) r.fail(key, "unknown setting");

  AgentConfig c;
  char hash[17];
  std::snprintf(hash, sizeof hash, "%016zx", std::hash<std::string>{}(text.str()));
  c.config_hash = hash;
  r.str(root, "", "broker_uri", c.broker_uri);
  r.str(root, "", "agent_id", c.agent_id, true);
  r.str(root, "", "post_id", c.post_id, true);
  r.str(root, "", "username", c.username);
  r.str(root, "", "password_file", c.password_file);
  r.boolean(root, "", "allow_plaintext", c.allow_plaintext);
  std::string path;
  r.str(root, "", "catalogue_file", path);
  if (!path.empty()) c.catalogue_file = file.parent_path() / path;
  if (const json* spool = r.find(root, "spool")) {
    if (!spool->is_object()) r.fail("spool", "must be an object");
    static const std::vector<std::string> spool_keys = {"dir",   "max_bytes",         "max_age_s", "segment_bytes",
                                                        "fsync", "fsync_interval_ms", "overflow"};
    for (const auto& [key, _] : spool->items())
      if (std::find(spool_keys.begin(), spool_keys.end(), key) == spool_keys.end())
        r.fail("spool." + key, "unknown setting");
    path.clear();
    r.str(*spool, "spool.", "dir", path);
    if (!path.empty()) c.spool.dir = file.parent_path() / path;
    r.uint(*spool, "spool.", "max_bytes", c.spool.max_bytes, 64 * 1024, std::int64_t{1} << 42);
    std::int64_t age = c.spool.max_age.count();
    r.uint(*spool, "spool.", "max_age_s", age, 0, std::int64_t{10} * 365 * 86400);
    c.spool.max_age = std::chrono::seconds(age);
    r.uint(*spool, "spool.", "segment_bytes", c.spool.segment_bytes, 16 * 1024, std::int64_t{1} << 30);
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
    else
      r.fail("spool.overflow", "must be refuse or drop_oldest");
  }
  if (!is_valid_node_id(c.agent_id)) r.fail("agent_id", "must match ^[a-z0-9][a-z0-9-]{0,47}$");
  if (!is_valid_node_id(c.post_id)) r.fail("post_id", "must match ^[a-z0-9][a-z0-9-]{0,47}$");
  if (c.broker_uri.rfind("tcp://", 0) != 0 && c.broker_uri.rfind("ssl://", 0) != 0 &&
      c.broker_uri.rfind("mqtt://", 0) != 0 && c.broker_uri.rfind("mqtts://", 0) != 0)
    r.fail("broker_uri", "must start with tcp://, ssl://, mqtt:// or mqtts://");
  if (const json* tls = r.find(root, "tls")) {
    if (!tls->is_object()) r.fail("tls", "must be an object");
    c.tls.enabled = true;
    r.boolean(*tls, "tls.", "enabled", c.tls.enabled);
    r.str(*tls, "tls.", "ca_file", c.tls.ca_file);
    r.str(*tls, "tls.", "cert_file", c.tls.cert_file);
    r.str(*tls, "tls.", "key_file", c.tls.key_file);
    r.boolean(*tls, "tls.", "verify_hostname", c.tls.verify_hostname);
  }
  if (const json* batch = r.find(root, "batch")) {
    if (!batch->is_object()) r.fail("batch", "must be an object");
    r.uint(*batch, "batch.", "max_events", c.batch_max_events, 1, 10000);
    std::int64_t delay = c.batch_max_delay.count();
    r.uint(*batch, "batch.", "max_delay_ms", delay, 0, 60000);
    c.batch_max_delay = std::chrono::milliseconds(delay);
    r.uint(*batch, "batch.", "max_inflight", c.max_inflight_batches, 1, 1000);
  }
  std::int64_t hb = c.heartbeat_interval.count(), ka = c.keep_alive.count();
  r.uint(root, "", "heartbeat_interval_s", hb, 1, 3600);
  r.uint(root, "", "keep_alive_s", ka, 2, 3600);
  c.heartbeat_interval = std::chrono::seconds(hb);
  c.keep_alive = std::chrono::seconds(ka);
  r.uint(root, "", "queue_max_events", c.queue_max_events, 1, 100'000'000);
  return c;
}

}  // namespace postwatch::agent
