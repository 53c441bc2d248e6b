// postwatch-broker-config --nats: the configuration of a NATS cluster (JetStream and its MQTT
// listener) that grants what the Mosquitto ACL grants, one nats-<i>.conf per node.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace postwatch::broker_config {

// A login, its secret (the generator writes it to secrets/<user>.password) and the secret's bcrypt
// hash (bcrypt_hash), which the nodes' files hold.
struct Login {
  std::string user, secret, hash;
};

struct AgentLogin {
  Login login;
  std::string region, post, agent;
};

struct NatsCluster {
  int nodes = 3;
  std::uint32_t partitions = 16;
  std::string cluster_name = "postwatch";
  // Where the other nodes reach node i (routes): one host per node.
  std::vector<std::string> node_hosts;
  // Address the client, route and MQTT listeners bind; monitoring binds loopback only.
  std::string listen = "0.0.0.0";
  // One port per node for each listener.
  std::vector<unsigned short> client_ports, route_ports, mqtt_ports, monitor_ports;
  std::filesystem::path store_dir;  // node i stores under store_dir/nats-<i>

  enum class Tls { None, Mutual, PasswordOnly };
  Tls tls = Tls::None;
  std::string ca_file, cert_file, key_file;
  // The certificate subject (RFC 4514, e.g. CN=agent.bamako.board-1,OU=bamako,O=Postwatch) that
  // verify_and_map turns into a login: {user} is the login, {post} the agent's post. An RDN with
  // {post} is left out for the aggregator and operators.
  std::string cert_dn = "CN={user},OU={post},O=Postwatch";

  Login route;  // the routes' own login between the nodes
};

// Expands a port option: "4222" gives 4222, 4223, ... (one per node); "4222,5222,6222" gives
// exactly those (as many as nodes). Throws std::invalid_argument with a message naming `option`.
std::vector<unsigned short> node_ports(const std::string& option, const std::string& value, int nodes);

// The subject a certificate must carry to log in as `user` (see NatsCluster::cert_dn).
std::string certificate_dn(const std::string& tmpl, const std::string& user, const std::string& post);

// A bcrypt hash of `secret` for nats-server's config. Throws std::runtime_error.
std::string bcrypt_hash(const std::string& secret);

// The configuration file of node `node` (0-based).
std::string nats_node_config(const NatsCluster& cluster, int node, const Login& aggregator,
                             const std::vector<Login>& operators, const std::vector<AgentLogin>& agents);

}  // namespace postwatch::broker_config
