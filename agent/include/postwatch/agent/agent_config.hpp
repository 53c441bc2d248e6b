// Agent configuration, read from a JSON file (firmware-config/*.json, docs/agent.md).
#pragma once

#include "postwatch/agent/pkcs11_key.hpp"
#include "postwatch/agent/spool_store.hpp"
#include "postwatch/batch_packing.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace postwatch {
class IndicatorCatalogue;
}

namespace postwatch::agent {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct TlsConfig {
  bool enabled = false;
  std::string ca_file;    // trust store: the CA(s) that issued the broker's certificate; empty = system store
  std::string cert_file;  // client certificate (mutual TLS), optional; may also hold the key
  std::string key_file;   // the client certificate's private key, if not in cert_file
  bool verify_hostname = true;
};

// One problem found in a config file or around it (catalogue, files, spool directory).
struct ConfigProblem {
  std::string field;  // "tls.ca_file"; empty for the file as a whole
  std::string message;
  bool warning = false;  // reported, but the agent still starts (e.g. a certificate not valid yet)
};

// The local API: a Unix-domain socket taking events as JSON lines (docs/agent.md, "Local API").
struct LocalApiConfig {
  bool enabled = false;
  std::filesystem::path socket = "/run/postwatch-agent/agent.sock";
  unsigned mode = 0660;  // who may connect: the owner and the group (post staff, local apps)
  std::size_t max_batch_events = 10000;
};

// The drop directory: JSON-lines or CSV files put there are ingested once (docs/agent.md, "Drop directory").
struct DropDirConfig {
  bool enabled = false;
  std::filesystem::path dir = "/var/lib/postwatch-agent/drop";
  std::chrono::seconds poll_interval{5};
  std::chrono::seconds min_age{2};  // a file must be this old (mtime) before it is claimed: copies finish first
  std::size_t max_file_bytes = std::size_t{64} * 1024 * 1024;
};

// Built-in device probes reported as the agent's own health indicators (docs/agent.md, "Device probes").
struct ProbesConfig {
  bool enabled = false;
  std::chrono::seconds interval{60};
  bool cpu = true, memory = true, disk = true, uptime = true, uplink = true, clock = true;
  std::chrono::milliseconds uplink_timeout{5000};
};

// One script probe: `command` runs every `interval`; its first output line is the indicator's value.
struct ScriptProbeConfig {
  std::string indicator;
  std::vector<std::string> command;
  std::chrono::seconds interval{60};
  std::chrono::seconds timeout{10};
};

// Who tells the agent it may delete events from its spool (docs/agent.md, "Release and resend").
enum class DeliveryConfirmMode {
  Aggregator,  // the aggregator's confirmation on the agent's confirm topic: survives a broker crash
  Broker,      // the broker's PUBACK: events the broker held only in memory can be lost
};

// The agent's signing identity (docs/security.md), written by `postwatch-agent enrol`. With
// both files the agent is enrolled: it signs what it publishes and obeys only confirmations
// signed by a key in aggregator_key_file. Default: agent.key and aggregator.pub beside the
// spool directory.
struct IdentityConfig {
  std::filesystem::path key_file;             // its Ed25519 private key, PEM, 0600 (or a token key's URI)
  std::filesystem::path aggregator_key_file;  // the aggregator's public key(s), hex, one per line
  Pkcs11Config pkcs11;                        // set: enrolment makes the key on this token
};

// Fleet bundles (docs/fleet.md): signed config and catalogue changes the agent takes over
// MQTT. Off unless key_file names the fleet's public key(s).
struct FleetConfig {
  std::filesystem::path key_file;   // the fleet's public key(s), hex, one per line
  std::filesystem::path state_dir;  // the bundles it holds and which is in force; default: "fleet" beside the spool
  bool allow_scripts = false;       // whether a bundle may set `scripts` (commands run on the board)
  bool enabled() const { return !key_file.empty(); }
};

// What a fleet bundle puts over the board's own files when the config is read.
struct ConfigOverride {
  std::string overlay;           // a JSON merge patch onto the config file (bundle_overlay.hpp); empty: none
  std::string catalogue;         // a whole catalogue as JSON text; empty: the config's own catalogue_file
  std::string catalogue_origin;  // how messages name it ("fleet bundle v7")
};

struct ConfigCheck;

struct AgentConfig {
  std::string broker_uri = "tcp://127.0.0.1:1883";
  // Further brokers that share the first one's messages (the other nodes of a NATS cluster, a
  // bridged Mosquitto): when a connect fails, the agent tries the next, in turn.
  std::vector<std::string> broker_fallbacks;
  // broker_uri, then the fallbacks.
  std::vector<std::string> brokers() const;
  std::string agent_id;
  std::string post_id;
  std::string username;
  std::string password_file;  // secret read from a file at connect time, never logged
  TlsConfig tls;
  bool allow_plaintext = false;  // tcp:// only when the config says so explicitly
  std::filesystem::path catalogue_file;
  // parse() sets spool.key_file to "<dir>.key" when the file names none (encryption on).
  SpoolOptions spool{.dir = "/var/lib/postwatch-agent/spool"};
  std::size_t batch_max_events = 500;
  std::chrono::milliseconds batch_max_delay{200};
  std::chrono::seconds heartbeat_interval{30};
  // A one-shot sender (emit): says so in its birth and death, so its leaving does not make its
  // post silent; `expect_every` is how often it promises to send again (0: no promise).
  bool one_shot = false;
  std::chrono::seconds expect_every{0};
  std::chrono::seconds keep_alive{20};
  std::size_t max_inflight_batches = 8;
  // uplink.compression (docs/agent.md, "Thin links"): none until every aggregator it may reach
  // reads compressed batches.
  BatchCompression compression = BatchCompression::None;
  // uplink.max_kbit_s: a cap on the MQTT bytes the agent sends (0: none); the spool takes up
  // what the link cannot carry.
  std::uint64_t uplink_max_kbit_s = 0;
  // uplink.proxy: "http://host:port", an HTTP proxy the agent asks for a tunnel (CONNECT) to the
  // broker (docs/agent.md, "Through a proxy"). Empty: none, or the environment's (Paho's rule).
  std::string uplink_proxy;
  std::size_t queue_max_events = 1'000'000;  // in-memory backlog only (tests, simulator)
  DeliveryConfirmMode confirm = DeliveryConfirmMode::Aggregator;
  IdentityConfig identity;
  std::string config_hash;  // of the file's text; reported in the birth message
  LocalApiConfig local_api;
  DropDirConfig drop_dir;
  ProbesConfig probes;
  std::vector<ScriptProbeConfig> scripts;
  FleetConfig fleet;

  // Throws ConfigError listing every problem in the file itself, one per line as
  // "<file>: <field>: <what>". Does not look at the catalogue or at the files the config names.
  static AgentConfig load(const std::filesystem::path& file);

  // Reads the file and collects every problem instead of stopping at the first; `config` holds
  // what could be read. Relative paths in the file are resolved against the file's directory.
  static AgentConfig parse(const std::filesystem::path& file, std::vector<ConfigProblem>& problems);
  // As parse(), from `text` (the file's, with a bundle's overlay applied); paths still resolve
  // against `file`'s directory.
  static AgentConfig parse_text(const std::filesystem::path& file, const std::string& text,
                                std::vector<ConfigProblem>& problems);

  // Everything `postwatch-agent --check-config` checks: the file (parse), the catalogue
  // (`catalogue_file`, else `default_catalogue`) and that post_id is in it, the plaintext/TLS rules,
  // the TLS and password files (readable, secrets not readable by group or others, certificates
  // parse and are within their validity, key matches certificate), that the spool directory is
  // writable or can be created, and that spool.key_file is a usable key (32 bytes, not readable by
  // group or others) or can be created, as the user running the check.
  // With `over`, the file as a fleet bundle changes it: its overlay and its catalogue.
  static ConfigCheck validate(const std::filesystem::path& file, const std::filesystem::path& default_catalogue = {},
                              const ConfigOverride& over = {});

  // Problems of this config that need no files: URI scheme vs. tls/allow_plaintext, tls fields
  // that go together, password_file needs username. Empty when consistent.
  std::vector<ConfigProblem> check_consistency() const;

  bool uses_tls() const;  // ssl://, mqtts:// or wss://
  bool aggregator_confirms() const { return confirm == DeliveryConfirmMode::Aggregator; }
};

// What AgentConfig::validate found: the config as far as it could be read, and every problem.
struct ConfigCheck {
  std::filesystem::path file;
  std::optional<AgentConfig> config;                    // empty when the file is not a readable JSON object
  std::shared_ptr<const IndicatorCatalogue> catalogue;  // null when it could not be loaded
  std::vector<ConfigProblem> problems;

  bool ok() const;  // no problem other than warnings
  std::size_t errors() const;
  // "<file>: <field>: <message>", with "warning: " before the field for warnings.
  std::string describe(const ConfigProblem& p) const;
  // Every problem, one per line (errors first).
  std::string describe_all() const;
};

// Reads a secret (the broker password) from `file`: refuses a file that group or others may
// read ("<file> is readable by group/others (mode 0644); chmod 600 <file>"), strips one trailing
// newline (and a carriage return before it). Throws ConfigError; the message never holds the secret.
std::string read_secret_file(const std::filesystem::path& file);

// Whether group or others may read `file` (an error message naming the mode), empty if not.
std::string secret_file_exposure(const std::filesystem::path& file);

}  // namespace postwatch::agent
