// Agent configuration, read from a JSON file (firmware-config/*.json, docs/agent.md).
#pragma once

#include "postwatch/agent/spool_store.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace postwatch::agent {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct TlsConfig {
  bool enabled = false;
  std::string ca_file;
  std::string cert_file;  // client certificate (mutual TLS), optional
  std::string key_file;
  bool verify_hostname = true;
};

struct AgentConfig {
  std::string broker_uri = "tcp://127.0.0.1:1883";
  std::string agent_id;
  std::string post_id;
  std::string username;
  std::string password_file;  // secret read from a file, never logged
  TlsConfig tls;
  bool allow_plaintext = false;  // tcp:// only when the config says so explicitly
  std::filesystem::path catalogue_file;
  SpoolOptions spool{.dir = "/var/lib/postwatch-agent/spool"};
  std::size_t batch_max_events = 500;
  std::chrono::milliseconds batch_max_delay{200};
  std::chrono::seconds heartbeat_interval{30};
  std::chrono::seconds keep_alive{20};
  std::size_t max_inflight_batches = 8;
  std::size_t queue_max_events = 1'000'000;  // in-memory backlog only (tests, simulator)
  std::string config_hash;                   // of the file's text; reported in the birth message

  // Throws ConfigError "<file>: <field>: <what>" for the first problem found.
  static AgentConfig load(const std::filesystem::path& file);
};

}  // namespace postwatch::agent
