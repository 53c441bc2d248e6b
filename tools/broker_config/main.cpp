// postwatch-broker-config: generates the Mosquitto configuration for a fleet from the
// post registry (the catalogue) and a fleet list: one credential per agent, and an ACL
// that lets an agent write only its own topics and read nothing, the aggregator read
// the agents' topics and write the feed, and operators read the feed.
//
// The TLS listener is mutual TLS by default: a client certificate from the CA in --cafile is
// required and its CN is the MQTT user the ACL applies to (Mosquitto's use_identity_as_username),
// so a leaked password alone gets nobody in and a certificate cannot act as another login.
// --insecure-password-only-tls writes the weaker posture: TLS without client certificates, the
// password file decides who is who.
//
// --nats writes the same grants for a NATS cluster instead (nats_config.hpp): one nats-<i>.conf per
// node, with JetStream, its MQTT listener and the events partition mapping of docs/scale-out.md.
#include "nats_config.hpp"
#include "postwatch/catalogue.hpp"
#include "postwatch/event_partitions.hpp"
#include "postwatch/fleet_bundle.hpp"
#include "postwatch/fleet_command.hpp"
#include "postwatch/topics.hpp"

#include <sys/stat.h>

#include <boost/program_options.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <set>
#include <sstream>

namespace po = boost::program_options;
namespace fs = std::filesystem;
using namespace postwatch;

namespace {

std::string random_secret() {
  static const char alphabet[] = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
  std::random_device rd;
  std::string s;
  for (int i = 0; i < 32; ++i) s += alphabet[rd() % (sizeof alphabet - 1)];
  return s;
}

void write_secret(const fs::path& file, const std::string& secret) {
  std::ofstream(file) << secret << "\n";
  fs::permissions(file, fs::perms::owner_read | fs::perms::owner_write);
}

struct FleetEntry {
  std::string post, agent;
};

std::vector<FleetEntry> read_fleet(const fs::path& file, const IndicatorCatalogue& cat) {
  std::ifstream in(file);
  if (!in) throw std::runtime_error(file.string() + ": cannot open fleet file");
  std::vector<FleetEntry> out;
  std::set<std::string> seen;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.empty() || line[0] == '#') continue;
    auto comma = line.find(',');
    FleetEntry e{line.substr(0, comma), comma == std::string::npos ? "" : line.substr(comma + 1)};
    auto where = file.string() + ":" + std::to_string(n) + ": ";
    if (!cat.find_post(e.post)) throw std::runtime_error(where + "post '" + e.post + "' is not in the catalogue");
    if (!is_valid_node_id(e.agent)) throw std::runtime_error(where + "agent id '" + e.agent + "' is not a valid id");
    if (!seen.insert(e.post + "/" + e.agent).second) throw std::runtime_error(where + "duplicate agent");
    out.push_back(e);
  }
  return out;
}

// --nats: nats-<i>.conf per node and the secrets.
void write_nats(broker_config::NatsCluster& cluster, const IndicatorCatalogue& cat,
                const std::vector<FleetEntry>& fleet, const std::vector<std::string>& operator_names,
                const fs::path& out) {
  auto login = [&](const std::string& user) {
    broker_config::Login l{user, random_secret(), ""};
    l.hash = broker_config::bcrypt_hash(l.secret);
    write_secret(out / "secrets" / (user + ".password"), l.secret);
    return l;
  };
  auto aggregator = login("postwatch-aggregator");
  std::vector<broker_config::Login> operators;
  for (const auto& op : operator_names) {
    if (!is_valid_node_id(op)) throw std::runtime_error("operator name '" + op + "' is not a valid id");
    operators.push_back(login(op));
  }
  std::vector<broker_config::AgentLogin> agents;
  for (const auto& a : fleet)
    agents.push_back({login("agent." + a.post + "." + a.agent), cat.find_post(a.post)->region, a.post, a.agent});
  // Between the nodes only; it is in every node's file, never handed out.
  cluster.route = {"postwatch-route", random_secret(), ""};

  std::string names;
  for (int i = 0; i < cluster.nodes; ++i) {
    auto file = out / ("nats-" + std::to_string(i + 1) + ".conf");
    // The route password in clear and the logins' hashes: owner and nats-server's group (chgrp nats),
    // from before anything is in it.
    std::ofstream(file, std::ios::trunc).close();
    fs::permissions(file, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
    std::ofstream(file) << broker_config::nats_node_config(cluster, i, aggregator, operators, agents);
    names += (i ? "," : "") + file.filename().string();
  }
  std::cout << "chgrp nats " << (out / "nats-*.conf").string() << " before starting nats-server as user nats; it "
            << "must be able to write " << cluster.store_dir.string() << "/nats-<i>\n";
  std::cout << "wrote " << out.string() << "/{" << names << "} and " << agents.size() + operators.size() + 1
            << " secret(s) in " << out.string() << "/secrets/\n";
  std::string mqtt_ports;
  for (auto p : cluster.mqtt_ports) mqtt_ports += (mqtt_ports.empty() ? "" : ",") + std::to_string(p);
  using Tls = broker_config::NatsCluster::Tls;
  if (cluster.tls == Tls::Mutual)
    std::cout << "posture: mutual TLS on MQTT port(s) " << mqtt_ports
              << ": a client certificate from the cafile's CA is required and its subject is the login ("
              << cluster.cert_dn << "); passwords are not checked there\n";
  else if (cluster.tls == Tls::PasswordOnly)
    std::cout << "posture: INSECURE password-only TLS on MQTT port(s) " << mqtt_ports
              << ": no client certificate required, a login's password is enough\n";
  else
    std::cout << "posture: PLAINTEXT MQTT on port(s) " << mqtt_ports
              << ", logins by password: give --cafile, --certfile and --keyfile for mutual TLS\n";
  std::string servers;
  for (int i = 0; i < cluster.nodes; ++i)
    servers += (i ? "," : "") + std::string("nats://") + cluster.node_hosts[static_cast<std::size_t>(i)] + ":" +
               std::to_string(cluster.client_ports[static_cast<std::size_t>(i)]);
  std::cout << "aggregators: --nats " << servers << " --nats-user postwatch-aggregator --nats-password-file "
            << (out / "secrets" / "postwatch-aggregator.password").string() << " --nats-partitions "
            << cluster.partitions << " --nats-replicas " << std::min(cluster.nodes, 3) << "\n";
}

// Options only --nats reads, and options only the Mosquitto output reads.
const char* const kNatsOnly[] = {"nodes",      "partitions", "cluster-name", "node-host", "listen", "client-port",
                                 "route-port", "mqtt-port",  "monitor-port", "store-dir", "cert-dn"};
const char* const kMosquittoOnly[] = {"tls-port", "plain-port"};

}  // namespace

int main(int argc, char** argv) {
  std::string catalogue = default_catalogue_path().string(), fleet, out_dir = "broker", ca, cert, key;
  std::vector<std::string> operators;
  unsigned short tls_port = 8883, plain_port = 0;
  bool password_only = false, nats = false;
  broker_config::NatsCluster cluster;
  cluster.partitions = partitions::default_count;
  std::vector<std::string> node_hosts{"127.0.0.1"};
  std::string client_port = "4222", route_port = "6222", mqtt_port, monitor_port = "8222", store_dir;
  po::options_description desc(
      "postwatch-broker-config — Mosquitto (or, with --nats, NATS cluster) configuration, credentials and ACL\n"
      "for a Postwatch fleet\n\n"
      "The fleet file has one 'post,agent' line per agent. Output: mosquitto.conf, acl, passwd (hashed),\n"
      "and secrets/<user>.password (mode 0600) to hand to each agent, the aggregator and operators.\n\n"
      "Posture of the TLS listener:\n"
      "  default: mutual TLS. A client certificate issued by the CA in --cafile is required\n"
      "    (require_certificate true) and its CN is the MQTT user (use_identity_as_username true):\n"
      "    agent.<post>.<agent>, postwatch-aggregator, or the operator's name. Mosquitto does not\n"
      "    check passwords on this listener; the passwords are for --plain-port only.\n"
      "  --insecure-password-only-tls: TLS without client certificates; the password alone\n"
      "    identifies a client, so anyone holding an agent's password can publish as it.\n\n"
      "--nats writes a NATS cluster instead (nats-server 2.9; docs/operations.md, \"Broker configuration\"):\n"
      "nats-1.conf ... nats-<nodes>.conf, one per node: JetStream, the routes between the nodes, an MQTT\n"
      "listener for agents, aggregator and operators, the mapping of the agents' events onto --partitions\n"
      "partition subjects (the aggregators' --nats-partitions), and the same grants as the ACL above;\n"
      "secrets/<user>.password as above. Start each node with nats-server -c <out>/nats-<i>.conf.\n"
      "A port option takes one port, node i then listening on port + i - 1, or one port per node\n"
      "(4222,4322,4422). The MQTT listener is:\n"
      "  with --cafile, --certfile, --keyfile: mutual TLS; the client certificate's subject is the\n"
      "    login (verify_and_map), see --cert-dn.\n"
      "  with --insecure-password-only-tls: TLS, logins by password only.\n"
      "  without them: PLAINTEXT, logins by password (a trusted network or a test machine only).\n"
      "The client port, which the aggregators' JetStream link uses, is plaintext with passwords.\n\noptions");
  desc.add_options()("help,h", "show this help")(
      "catalogue", po::value(&catalogue)->value_name("FILE"),
      (std::string("post registry (catalogue JSON); default: ") + kDefaultCatalogueHelp).c_str())(
      "fleet", po::value(&fleet)->required(), "fleet file: post,agent per line")(
      "out", po::value(&out_dir)->default_value(out_dir), "output directory")(
      "operator", po::value(&operators)->multitoken(), "operator user names (read the feed)")(
      "tls-port", po::value(&tls_port)->default_value(tls_port), "TLS listener port")(
      "cafile", po::value(&ca), "CA certificate for the TLS listener")(
      "certfile", po::value(&cert), "broker certificate")("keyfile", po::value(&key), "broker private key")(
      "plain-port", po::value(&plain_port)->default_value(0),
      "also a plaintext listener on 127.0.0.1 (tests only; 0 = none)")(
      "insecure-password-only-tls", po::bool_switch(&password_only),
      "INSECURE: do not require client certificates on the TLS listener; logins by password only")(
      "nats", po::bool_switch(&nats), "write a NATS cluster's configuration instead of Mosquitto's")(
      "nodes", po::value(&cluster.nodes)->default_value(cluster.nodes), "--nats: nodes of the cluster")(
      "partitions", po::value(&cluster.partitions)->default_value(cluster.partitions),
      "--nats: event partitions of the mapping (the aggregators' --nats-partitions)")(
      "cluster-name", po::value(&cluster.cluster_name)->default_value(cluster.cluster_name),
      "--nats: the cluster's name; node i is <name>-<i>")(
      "node-host", po::value(&node_hosts)->multitoken()->value_name("HOST"),
      "--nats: where the other nodes reach each node's route port: one host for all, or one per node "
      "(default 127.0.0.1)")(
      "listen", po::value(&cluster.listen)->default_value(cluster.listen),
      "--nats: address of the client, route and MQTT listeners (monitoring listens on 127.0.0.1)")(
      "client-port", po::value(&client_port)->default_value(client_port), "--nats: NATS client port(s)")(
      "route-port", po::value(&route_port)->default_value(route_port), "--nats: cluster route port(s)")(
      "mqtt-port", po::value(&mqtt_port)->value_name("PORTS"),
      "--nats: MQTT port(s); default 8883 with TLS, 1883 without")(
      "monitor-port", po::value(&monitor_port)->default_value(monitor_port), "--nats: monitoring port(s)")(
      "store-dir", po::value(&store_dir)->value_name("DIR"),
      "--nats: JetStream storage, node i in DIR/nats-<i> (default <out>/jetstream)")(
      "cert-dn", po::value(&cluster.cert_dn)->default_value(cluster.cert_dn),
      "--nats with mutual TLS: the subject of a login's certificate, {user} the login, {post} the agent's "
      "post (an RDN with {post} is left out for the aggregator and operators)");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    if (vm.count("help")) {
      std::cout << desc << "\n";
      return 0;
    }
    po::notify(vm);
    for (const char* o : kNatsOnly)
      if (!nats && vm.count(o) && !vm[o].defaulted()) throw po::error(std::string("--") + o + " needs --nats");
    for (const char* o : kMosquittoOnly)
      if (nats && vm.count(o) && !vm[o].defaulted())
        throw po::error(std::string("--") + o + " is for Mosquitto; with --nats use --mqtt-port");
    if (nats) {
      if (cluster.nodes < 1 || cluster.nodes > 64) throw po::error("--nodes: 1 to 64");
      if (cluster.partitions < 1 || cluster.partitions > 1024) throw po::error("--partitions: 1 to 1024");
      if (!is_valid_node_id(cluster.cluster_name)) throw po::error("--cluster-name: not a valid id");
      if (node_hosts.size() != 1 && node_hosts.size() != static_cast<std::size_t>(cluster.nodes))
        throw po::error("--node-host: one host, or one per node");
      cluster.node_hosts = node_hosts;
      cluster.node_hosts.resize(static_cast<std::size_t>(cluster.nodes), node_hosts[0]);
      bool tls = password_only || !ca.empty() || !cert.empty() || !key.empty();
      if (mqtt_port.empty()) mqtt_port = tls ? "8883" : "1883";
      try {
        cluster.client_ports = broker_config::node_ports("client-port", client_port, cluster.nodes);
        cluster.route_ports = broker_config::node_ports("route-port", route_port, cluster.nodes);
        cluster.mqtt_ports = broker_config::node_ports("mqtt-port", mqtt_port, cluster.nodes);
        cluster.monitor_ports = broker_config::node_ports("monitor-port", monitor_port, cluster.nodes);
      } catch (const std::invalid_argument& e) {
        throw po::error(e.what());
      }
      if (cluster.cert_dn.find("{user}") == std::string::npos) throw po::error("--cert-dn must contain {user}");
      cluster.tls = !tls            ? broker_config::NatsCluster::Tls::None
                    : password_only ? broker_config::NatsCluster::Tls::PasswordOnly
                                    : broker_config::NatsCluster::Tls::Mutual;
    }
  } catch (const po::error& e) {
    std::cerr << "postwatch-broker-config: " << e.what() << "\n(see --help)\n";
    return 2;
  }
  if (password_only)
    std::cerr << "postwatch-broker-config: WARNING: --insecure-password-only-tls: the TLS listener will not require "
                 "client certificates. Anyone with an agent's password can publish as that agent from anywhere "
                 "the port is reachable. Use mutual TLS (the default) when the agents have certificates.\n";
  try {
    auto cat = IndicatorCatalogue::load(catalogue);
    auto agents = read_fleet(fleet, cat);
    fs::path out(out_dir);
    fs::create_directories(out / "secrets");
    fs::permissions(out / "secrets", fs::perms::owner_all);
    if (nats) {
      cluster.ca_file = ca.empty() ? "/etc/postwatch/ca.crt" : fs::absolute(ca).string();
      cluster.cert_file = cert.empty() ? "/etc/postwatch/broker.crt" : fs::absolute(cert).string();
      cluster.key_file = key.empty() ? "/etc/postwatch/broker.key" : fs::absolute(key).string();
      cluster.store_dir = fs::absolute(store_dir.empty() ? out / "jetstream" : fs::path(store_dir));
      write_nats(cluster, cat, agents, operators, out);
      return 0;
    }

    std::ostringstream acl, passwd;
    // Mosquitto reads the ACL top-down per user; anything not granted is denied.
    acl << "# Generated by postwatch-broker-config. Anything not granted here is denied.\n\n";
    auto add_user = [&](const std::string& user) {
      auto secret = random_secret();
      passwd << user << ":" << secret << "\n";
      write_secret(out / "secrets" / (user + ".password"), secret);
    };
    add_user("postwatch-aggregator");
    acl << "user postwatch-aggregator\n"
        << "topic read " << topics::events_filter << "\n"
        << "topic read " << topics::state_filter << "\n"
        << "topic read " << topics::heartbeat_filter << "\n"
        << "topic read " << topics::enrol_filter << "\n"
        << "topic write " << topics::prefix
        << "/feed/#\n"
        // Delivery confirmations and resend requests to each agent (docs/wire-format.md), and
        // the answers to enrolments (docs/security.md).
        << "topic write " << topics::prefix << "/+/+/+/confirm\n"
        << "topic write " << topics::prefix
        << "/+/+/+/enrolled\n"
        // Fleet bundles (docs/fleet.md), retained for the agents they address.
        << "topic write " << topics::prefix
        << "/fleet/bundle/#\n"
        // Remote commands, retained per agent, and the agents' answers (docs/fleet.md).
        << "topic write " << topics::prefix << "/fleet/command/#\n"
        << "topic read " << topics::prefix << "/fleet/command-result/#\n\n";
    for (const auto& op : operators) {
      if (!is_valid_node_id(op)) throw std::runtime_error("operator name '" + op + "' is not a valid id");
      add_user(op);
      acl << "user " << op << "\ntopic read " << topics::prefix << "/feed/#\n\n";
    }
    for (const auto& a : agents) {
      std::string user = "agent." + a.post + "." + a.agent;
      add_user(user);
      const auto& region = cat.find_post(a.post)->region;
      acl << "user " << user << "\n";
      for (auto ch :
           {topics::Channel::Events, topics::Channel::State, topics::Channel::Heartbeat, topics::Channel::Enrol})
        acl << "topic write " << topics::agent_topic(region, a.post, a.agent, ch) << "\n";
      // Its own confirmations and enrolment answer from the aggregator, and nothing else.
      acl << "topic read " << topics::agent_topic(region, a.post, a.agent, topics::Channel::Confirm) << "\n"
          << "topic read " << topics::agent_topic(region, a.post, a.agent, topics::Channel::Enrolled) << "\n";
      // The fleet bundles addressed to it: the fleet's, its region's, its post's, its own.
      for (const auto& t : bundle_topics_for(region, a.post, a.agent)) acl << "topic read " << t << "\n";
      // Its own remote commands, and its answers to them.
      acl << "topic read " << command_topic(a.post, a.agent) << "\n"
          << "topic write " << command_result_topic(a.post, a.agent) << "\n\n";
    }
    std::ofstream(out / "acl") << acl.str();
    std::ofstream(out / "passwd") << passwd.str();
    // Hashes only, but still: owner and the broker's group (chgrp mosquitto) read it, nobody else.
    fs::permissions(out / "passwd", fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
    std::string hash_cmd = "mosquitto_passwd -U '" + (out / "passwd").string() + "'";
    if (std::system(hash_cmd.c_str()) != 0) throw std::runtime_error("mosquitto_passwd -U failed");

    std::ofstream conf(out / "mosquitto.conf");
    conf << "# Generated by postwatch-broker-config for " << agents.size() << " agent(s).\n"
         << "# Posture: "
         << (password_only ? "INSECURE password-only TLS (--insecure-password-only-tls): no client certificate.\n"
                           : "mutual TLS: client certificate required, its CN is the MQTT user.\n")
         << "per_listener_settings false\nallow_anonymous false\n";
    if (!password_only)
      conf << "# Not consulted on the TLS listener (use_identity_as_username): only the --plain-port one uses it.\n";
    conf << "password_file " << fs::absolute(out / "passwd").string() << "\n"
         << "acl_file " << fs::absolute(out / "acl").string() << "\n"
         << "# Keep sessions and queued events across broker restarts, without a queue limit.\n"
         << "persistence true\npersistence_location " << fs::absolute(out).string() << "/\n"
         << "max_queued_messages 0\n"
         << "# Persistence is periodic: a broker crash loses what it acknowledged since the last save.\n"
         << "autosave_interval 5\n\n"
         << "listener " << tls_port << "\n"
         << "cafile " << (ca.empty() ? "/etc/postwatch/ca.crt" : fs::absolute(ca).string()) << "\n"
         << "certfile " << (cert.empty() ? "/etc/postwatch/broker.crt" : fs::absolute(cert).string()) << "\n"
         << "keyfile " << (key.empty() ? "/etc/postwatch/broker.key" : fs::absolute(key).string()) << "\n"
         << "tls_version tlsv1.2\n";
    if (!password_only)
      // Any certificate the cafile's CA issued gets in, as the user named by its CN; the
      // password is not checked here (Mosquitto 2.0 cannot require both and tie them together).
      conf << "require_certificate true\nuse_identity_as_username true\n";
    if (plain_port) conf << "\n# Tests only: plaintext on loopback.\nlistener " << plain_port << " 127.0.0.1\n";
    std::cout << "chgrp mosquitto " << (out / "passwd").string() << " before starting the broker as user mosquitto\n";
    std::cout << "wrote " << out.string() << "/{mosquitto.conf,acl,passwd} and " << agents.size() + operators.size() + 1
              << " secret(s) in " << out.string() << "/secrets/\n";
    if (password_only)
      std::cout << "posture: INSECURE password-only TLS on port " << tls_port
                << ": no client certificate required, a login's password is enough\n";
    else
      std::cout << "posture: mutual TLS on port " << tls_port
                << ": a client certificate from the cafile's CA is required and its CN is the login "
                   "(agent.<post>.<agent>, postwatch-aggregator, operators); passwords are not checked there\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "postwatch-broker-config: " << e.what() << "\n";
    return 1;
  }
}
