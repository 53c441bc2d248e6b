#include "nats_config.hpp"

#include "postwatch/event_partitions.hpp"
#include "postwatch/fleet_bundle.hpp"
#include "postwatch/fleet_command.hpp"
#include "postwatch/topics.hpp"

#include <crypt.h>

#include <algorithm>
#include <memory>
#include <sstream>
#include <stdexcept>

namespace postwatch::broker_config {

namespace {

// NATS's MQTT listener turns an MQTT topic (filter) into a subject: '/' -> '.', '+' -> '*', '#' -> '>'.
std::string subject_of(std::string_view topic) {
  std::string s(topic);
  for (auto& c : s) c = c == '/' ? '.' : c == '+' ? '*' : c == '#' ? '>' : c;
  return s;
}

std::string conf_string(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string list(const std::vector<std::string>& items, const std::string& indent) {
  std::string out = "[\n";
  for (const auto& i : items) out += indent + "  " + conf_string(i) + "\n";
  return out + indent + "]";
}

struct Permissions {
  std::vector<std::string> publish, publish_deny, subscribe;
};

// MQTT delivers a QoS 1 subscription through a JetStream consumer whose deliver subject,
// $MQTT.sub.<nuid>, nats-server 2.9 subscribes with the client's own permissions.
constexpr const char* kMqttDelivery = "$MQTT.sub.>";

// The JetStream API subjects that address the MQTT listener's own streams (sessions, QoS 1
// messages, retained messages): the aggregator's $JS.API.> must not reach them.
std::vector<std::string> mqtt_stream_api_denies() {
  std::vector<std::string> out;
  for (const char* stream : {"$MQTT_sess", "$MQTT_msgs", "$MQTT_rmsgs"})
    for (const char* pattern : {"$JS.API.*.*.", "$JS.API.*.*.*."}) {
      out.push_back(std::string(pattern) + stream);
      out.push_back(std::string(pattern) + stream + ".>");
    }
  return out;
}

Permissions aggregator_permissions() {
  const auto feed = subject_of(topics::prefix) + ".feed";
  Permissions p;
  // Confirmations and resend requests to each agent, and the answers to enrolments (docs/security.md).
  p.publish = {subject_of(topics::agent_topic("+", "+", "+", topics::Channel::Confirm)),
               subject_of(topics::agent_topic("+", "+", "+", topics::Channel::Enrolled)), feed, feed + ".>",
               subject_of(topics::prefix) + ".fleet.bundle.>", subject_of(topics::prefix) + ".fleet.command.>",
               // JetStream and key-value (the cluster's stream, leases, members, post snapshots):
               // API requests, key-value puts, acknowledgements, flow control of watchers.
               "$JS.API.>", "$KV.>", "$JS.ACK.>", "$JS.FC.>"};
  p.publish_deny = mqtt_stream_api_denies();
  p.subscribe = {subject_of(topics::events_filter),
                 subject_of(topics::state_filter),
                 subject_of(topics::heartbeat_filter),
                 subject_of(topics::enrol_filter),
                 subject_of(topics::prefix) + ".fleet.command-result.>",
                 partitions::all_subjects(),
                 partitions::all_deliver_subjects(),
                 "_INBOX.>",
                 kMqttDelivery};
  return p;
}

Permissions operator_permissions() {
  const auto feed = subject_of(topics::prefix) + ".feed";
  // MQTT's postwatch/v1/feed/# also subscribes postwatch.v1.feed itself ('#' includes the parent).
  return {{}, {}, {feed, feed + ".>", kMqttDelivery}};
}

// "<prefix>." of the partition subjects, "<prefix>.>".
std::string partition_prefix() {
  auto s = partitions::all_subjects();
  s.pop_back();
  return s;
}

// The subject an agent's events arrive on after the mapping, on its post's partition.
std::string partition_subject(const AgentLogin& a, std::uint32_t partitions) {
  auto s = partitions::partition_subjects(partitions::partition_of(a.post, partitions));  // "<prefix><p>.>"
  s.pop_back();
  return s + a.region + "." + a.post + "." + a.agent;
}

Permissions agent_permissions(const AgentLogin& a, std::uint32_t partitions) {
  using topics::Channel;
  Permissions p;
  p.publish = {partition_subject(a, partitions),
               subject_of(topics::agent_topic(a.region, a.post, a.agent, Channel::Events)),
               subject_of(topics::agent_topic(a.region, a.post, a.agent, Channel::State)),
               subject_of(topics::agent_topic(a.region, a.post, a.agent, Channel::Heartbeat)),
               subject_of(topics::agent_topic(a.region, a.post, a.agent, Channel::Enrol))};
  // Its own confirmations and enrolment answer, and nothing else of the aggregator's.
  p.subscribe = {subject_of(topics::agent_topic(a.region, a.post, a.agent, Channel::Confirm)),
                 subject_of(topics::agent_topic(a.region, a.post, a.agent, Channel::Enrolled)), kMqttDelivery};
  // The fleet bundles addressed to it (docs/fleet.md).
  for (const auto& t : bundle_topics_for(a.region, a.post, a.agent)) p.subscribe.push_back(subject_of(t));
  // Its own remote commands, and its answers to them.
  p.subscribe.push_back(subject_of(command_topic(a.post, a.agent)));
  p.publish.push_back(subject_of(command_result_topic(a.post, a.agent)));
  return p;
}

void write_user(std::ostream& out, const std::string& user, const std::string* password, const Permissions& p,
                bool mqtt_only) {
  const std::string in = "      ";
  out << "    {\n" << in << "user: " << conf_string(user) << "\n";
  if (password) out << in << "password: " << conf_string(*password) << "\n";
  if (mqtt_only) out << in << "allowed_connection_types: [\"MQTT\"]\n";
  out << in << "permissions: {\n";
  if (p.publish.empty())
    out << in << "  publish: { deny: \">\" }\n";
  else {
    out << in << "  publish: {\n" << in << "    allow: " << list(p.publish, in + "    ") << "\n";
    if (!p.publish_deny.empty()) out << in << "    deny: " << list(p.publish_deny, in + "    ") << "\n";
    out << in << "  }\n";
  }
  out << in << "  subscribe: { allow: " << list(p.subscribe, in + "  ") << " }\n" << in << "}\n    }\n";
}

std::string host_port(const std::string& host, unsigned short port) {
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

}  // namespace

std::vector<unsigned short> node_ports(const std::string& option, const std::string& value, int nodes) {
  std::vector<unsigned short> out;
  std::stringstream in(value);
  std::string item;
  while (std::getline(in, item, ',')) {
    std::size_t used = 0;
    unsigned long port = 0;
    try {
      port = std::stoul(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != item.size() || port == 0 || port > 65535)
      throw std::invalid_argument("--" + option + ": '" + item + "' is not a port");
    out.push_back(static_cast<unsigned short>(port));
  }
  if (out.size() == 1)
    for (int i = 1; i < nodes; ++i) {
      if (out[0] + i > 65535) throw std::invalid_argument("--" + option + ": " + value + " + node offset passes 65535");
      out.push_back(static_cast<unsigned short>(out[0] + i));
    }
  if (out.size() != static_cast<std::size_t>(nodes))
    throw std::invalid_argument("--" + option + ": one port, or one per node (" + std::to_string(nodes) + ")");
  return out;
}

std::string certificate_dn(const std::string& tmpl, const std::string& user, const std::string& post) {
  std::string out;
  std::stringstream in(tmpl);
  std::string rdn;
  while (std::getline(in, rdn, ',')) {
    auto p = rdn.find("{post}");
    if (p != std::string::npos && post.empty()) continue;
    for (auto [key, value] : {std::pair<std::string, std::string>{"{user}", user}, {"{post}", post}})
      for (auto at = rdn.find(key); at != std::string::npos; at = rdn.find(key, at + value.size()))
        rdn.replace(at, key.size(), value);
    out += (out.empty() ? "" : ",") + rdn;
  }
  return out;
}

std::string bcrypt_hash(const std::string& secret) {
  // Cost 4, bcrypt's least: the secrets are 32 random characters (about 186 bits), which no work
  // factor makes harder to guess, while each login pays it, for every agent of a reconnect storm.
  char salt[CRYPT_GENSALT_OUTPUT_SIZE];
  if (!crypt_gensalt_rn("$2b$", 4, nullptr, 0, salt, sizeof salt))
    throw std::runtime_error("crypt_gensalt: no bcrypt in this libcrypt");
  auto data = std::make_unique<crypt_data>();
  const char* hash = crypt_r(secret.c_str(), salt, data.get());
  if (!hash || hash[0] != '$') throw std::runtime_error("crypt: bcrypt failed");
  return hash;
}

std::string nats_node_config(const NatsCluster& c, int node, const Login& aggregator,
                             const std::vector<Login>& operators, const std::vector<AgentLogin>& agents) {
  const auto i = static_cast<std::size_t>(node);
  const auto name = c.cluster_name + "-" + std::to_string(node + 1);
  const bool mutual = c.tls == NatsCluster::Tls::Mutual;
  std::ostringstream out;
  out << "# Generated by postwatch-broker-config --nats: node " << node + 1 << " of " << c.nodes << " of NATS cluster "
      << conf_string(c.cluster_name) << ", for " << agents.size() << " agent(s).\n"
      << "# Start it with: nats-server -c <this file>. It holds the route password in clear and the logins'\n"
      << "# bcrypt hashes: readable by its owner and nats-server's group only.\n"
      << "#\n# Posture of the MQTT listener: "
      << (mutual ? "mutual TLS. A client certificate from ca_file is required and its subject is the\n"
                   "# login (verify_and_map); passwords are not checked there.\n"
          : c.tls == NatsCluster::Tls::PasswordOnly
              ? "INSECURE password-only TLS (--insecure-password-only-tls): no client certificate,\n"
                "# the password alone identifies a client.\n"
              : "PLAINTEXT, logins by password (no --cafile/--certfile/--keyfile given):\n"
                "# passwords cross the network in clear; use it on a trusted network or a test machine only.\n")
      << "# The NATS client port (the aggregators' JetStream link) is plaintext with passwords: the aggregator's\n"
      << "# NATS link has no TLS options; keep that port on the brokers' and aggregators' network.\n\n";

  out << "server_name: " << conf_string(name) << "\n"
      << "listen: " << conf_string(host_port(c.listen, c.client_ports[i])) << "\n"
      << "# Monitoring (/healthz, /varz, /connz): loopback only.\n"
      << "http: " << conf_string(host_port("127.0.0.1", c.monitor_ports[i])) << "\n\n"
      << "jetstream {\n  store_dir: " << conf_string((c.store_dir / ("nats-" + std::to_string(node + 1))).string())
      << "\n}\n\n";

  if (c.nodes > 1) {
    out << "cluster {\n  name: " << conf_string(c.cluster_name) << "\n"
        << "  listen: " << conf_string(host_port(c.listen, c.route_ports[i])) << "\n"
        << "  # Only the other nodes of this cluster may connect as routes.\n"
        << "  authorization { user: " << conf_string(c.route.user) << ", password: " << conf_string(c.route.secret)
        << " }\n  routes: [\n";
    for (int k = 0; k < c.nodes; ++k)
      if (k != node)
        out << "    "
            << conf_string(
                   "nats-route://" + c.route.user + ":" + c.route.secret + "@" +
                   host_port(c.node_hosts[static_cast<std::size_t>(k)], c.route_ports[static_cast<std::size_t>(k)]))
            << "\n";
    out << "  ]\n}\n\n";
  }

  out << "mqtt {\n  listen: " << conf_string(host_port(c.listen, c.mqtt_ports[i])) << "\n"
      << "  # Every QoS 1 subscription is a JetStream consumer. Replicated (the default in a cluster), each\n"
      << "  # costs the cluster's meta layer 130-670 ms per agent subscribing, so a reconnecting fleet\n"
      << "  # queues for minutes; one replica costs 3-5 ms. On file, not in memory: 2.9.10 keeps\n"
      << "  # acknowledged messages for some single-replica in-memory consumers. Agents subscribe at every\n"
      << "  # connection, and confirms are retained: each SUBSCRIBE gets the latest one.\n"
      << "  consumer_replicas: 1\n"
      << "  # Sessions and retained messages (the confirms, the feed) on every node, up to 3: the default\n"
      << "  # counts the nodes the first MQTT login sees, which in a starting cluster can be fewer.\n"
      << "  stream_replicas: " << std::min(c.nodes, 3) << "\n"
      << "  # The first login on a node waits for those streams, 2 s and more after a start, which is\n"
      << "  # nats-server's whole default login timeout; boards may also be on slow links.\n"
      << "  authorization { timeout: 10 }\n";
  if (c.tls != NatsCluster::Tls::None) {
    out << "  tls {\n    cert_file: " << conf_string(c.cert_file) << "\n    key_file: " << conf_string(c.key_file)
        << "\n    timeout: 10  # the handshake's, for boards on slow links (default 2 s)\n";
    if (mutual)
      out << "    ca_file: " << conf_string(c.ca_file) << "\n"
          << "    # A certificate from ca_file is required, and its subject is the login: nats-server 2.9 matches\n"
          << "    # the certificate's e-mail, DNS and URI names, then its whole subject, against the user names\n"
          << "    # below (not the CN alone, as Mosquitto's use_identity_as_username does). So each login has a\n"
          << "    # user named by the subject its certificate must carry, " << c.cert_dn << ".\n"
          << "    verify_and_map: true\n";
    out << "  }\n";
  }
  out << "}\n\n";

  out << "# Every agent's events topic goes to its post's partition, captured by the stream "
      << partitions::events_stream << "\n# (docs/scale-out.md).\n"
      << "mappings = {\n  " << conf_string(partitions::mapping_source) << ": "
      << conf_string(partitions::mapping_destination(c.partitions)) << "\n}\n\n";

  out << "# The logins and what each may do: the Mosquitto ACL's grants (postwatch-broker-config without\n"
      << "# --nats), anything not granted is denied. MQTT topics are subjects here ('/' is '.').\n"
      << "# - nats-server 2.9 checks an MQTT publish after the mapping above: an agent's events are\n"
      << "#   allowed on its post's partition subject (" << partition_prefix()
      << "<partition>.<region>.<post>.<agent>),\n"
      << "#   as well as under their own topic.\n"
      << "# - It subscribes a QoS 1 subscription's internal delivery subject, " << kMqttDelivery
      << ", with the client's\n"
      << "#   permissions, so every MQTT login has it. MQTT clients cannot subscribe it themselves; agents and\n"
      << "#   operators may use MQTT only (allowed_connection_types), so nobody else reads it either, except\n"
      << "#   the aggregator over NATS, which would see only deliveries of what it reads or writes anyway.\n"
      << "# - The aggregator's JetStream rights exclude the MQTT listener's own streams ($MQTT_*).\n"
      << "authorization {\n  users: [\n";
  const auto agg = aggregator_permissions(), ops = operator_permissions();
  write_user(out, aggregator.user, &aggregator.hash, agg, false);
  for (const auto& o : operators) write_user(out, o.user, &o.hash, ops, true);
  for (const auto& a : agents) write_user(out, a.login.user, &a.login.hash, agent_permissions(a, c.partitions), true);
  if (mutual) {
    out << "    # Logins by certificate subject (MQTT listener, verify_and_map): no password, and MQTT only, so\n"
        << "    # the client port, which checks passwords, refuses them. nats-server warns \"Plaintext passwords\n"
        << "    # detected\" at start because of them; there are none.\n";
    write_user(out, certificate_dn(c.cert_dn, aggregator.user, ""), nullptr, agg, true);
    for (const auto& o : operators) write_user(out, certificate_dn(c.cert_dn, o.user, ""), nullptr, ops, true);
    for (const auto& a : agents)
      write_user(out, certificate_dn(c.cert_dn, a.login.user, a.post), nullptr, agent_permissions(a, c.partitions),
                 true);
  }
  out << "  ]\n}\n";
  return out.str();
}

}  // namespace postwatch::broker_config
