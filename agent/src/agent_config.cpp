#include "postwatch/agent/agent_config.hpp"

#include "postwatch/catalogue.hpp"

#include <nlohmann/json.hpp>

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
  json root;
  try {
    root = json::parse(in);
  } catch (const json::parse_error& e) {
    throw ConfigError(file.string() + ": not valid JSON: " + e.what());
  }
  if (!root.is_object()) throw ConfigError(file.string() + ": expected a JSON object");
  FieldReader r(root, file.string());
  static const std::vector<std::string> known = {
      "broker_uri",      "agent_id",       "post_id",   "username", "password_file",        "tls",
      "allow_plaintext", "catalogue_file", "spool_dir", "batch",    "heartbeat_interval_s", "keep_alive_s",
      "queue_max_events"};
  for (const auto& [key, _] : root.items())
    if (std::find(known.begin(), known.end(), key) == known.end()) r.fail(key, "unknown setting");

  AgentConfig c;
  r.str(root, "", "broker_uri", c.broker_uri);
  r.str(root, "", "agent_id", c.agent_id, true);
  r.str(root, "", "post_id", c.post_id, true);
  r.str(root, "", "username", c.username);
  r.str(root, "", "password_file", c.password_file);
  r.boolean(root, "", "allow_plaintext", c.allow_plaintext);
  std::string path;
  r.str(root, "", "catalogue_file", path);
  if (!path.empty()) c.catalogue_file = file.parent_path() / path;
  path.clear();
  r.str(root, "", "spool_dir", path);
  if (!path.empty()) c.spool_dir = file.parent_path() / path;
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
