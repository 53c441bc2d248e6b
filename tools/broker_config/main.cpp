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
#include "postwatch/catalogue.hpp"
#include "postwatch/topics.hpp"

#include <sys/stat.h>

#include <boost/program_options.hpp>

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

}  // namespace

int main(int argc, char** argv) {
  std::string catalogue = default_catalogue_path().string(), fleet, out_dir = "broker", ca, cert, key;
  std::vector<std::string> operators;
  unsigned short tls_port = 8883, plain_port = 0;
  bool password_only = false;
  po::options_description desc(
      "postwatch-broker-config — Mosquitto configuration, credentials and ACL for a Postwatch fleet\n\n"
      "The fleet file has one 'post,agent' line per agent. Output: mosquitto.conf, acl, passwd (hashed),\n"
      "and secrets/<user>.password (mode 0600) to hand to each agent, the aggregator and operators.\n\n"
      "Posture of the TLS listener:\n"
      "  default: mutual TLS. A client certificate issued by the CA in --cafile is required\n"
      "    (require_certificate true) and its CN is the MQTT user (use_identity_as_username true):\n"
      "    agent.<post>.<agent>, postwatch-aggregator, or the operator's name. Mosquitto does not\n"
      "    check passwords on this listener; the passwords are for --plain-port only.\n"
      "  --insecure-password-only-tls: TLS without client certificates; the password alone\n"
      "    identifies a client, so anyone holding an agent's password can publish as it.\n\noptions");
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
      "INSECURE: do not require client certificates on the TLS listener; logins by password only");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    if (vm.count("help")) {
      std::cout << desc << "\n";
      return 0;
    }
    po::notify(vm);
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
        << "topic write " << topics::prefix
        << "/feed/#\n"
        // Delivery confirmations and resend requests to each agent (docs/wire-format.md).
        << "topic write " << topics::prefix
        << "/+/+/+/confirm\n"
        // Scale-out (docs/scale-out.md): members, partials and hand-overs between instances.
        << "topic readwrite " << topics::prefix << "/cluster/#\n\n";
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
      for (auto ch : {topics::Channel::Events, topics::Channel::State, topics::Channel::Heartbeat})
        acl << "topic write " << topics::agent_topic(region, a.post, a.agent, ch) << "\n";
      // Its own confirmations from the aggregator, and nothing else.
      acl << "topic read " << topics::agent_topic(region, a.post, a.agent, topics::Channel::Confirm) << "\n\n";
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
