// AgentConfig: where it is read from (load, parse) and the checks that need no files
// (check_consistency). The sections are read in agent_config_sections.cpp and
// agent_config_inputs.cpp, the files the config names checked in config_check.cpp.
#include "agent_config_parts.hpp"

#include "postwatch/agent/broker_route.hpp"
#include "postwatch/secret_file.hpp"
#include "postwatch/whole_file.hpp"

namespace postwatch::agent {

std::string secret_file_exposure(const std::filesystem::path& file) { return postwatch::secret_file_exposure(file); }

std::string read_secret_file(const std::filesystem::path& file) {
  try {
    return postwatch::read_secret_file(file);
  } catch (const std::runtime_error& e) {
    throw ConfigError(std::string("password_file: ") + e.what());
  }
}

bool AgentConfig::uses_tls() const { return is_tls_broker_uri(broker_uri); }

std::vector<std::string> AgentConfig::brokers() const {
  std::vector<std::string> out{broker_uri};
  out.insert(out.end(), broker_fallbacks.begin(), broker_fallbacks.end());
  return out;
}

std::vector<ConfigProblem> AgentConfig::check_consistency() const {
  std::vector<ConfigProblem> out;
  bool plaintext = is_plaintext_broker_uri(broker_uri);
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

bool read_config_text(const std::filesystem::path& file, std::string& out, std::vector<ConfigProblem>& problems) {
  std::string error;
  auto text = read_whole_file(file, &error);
  if (!text) {
    problems.push_back({"", "cannot open config file: " + error});
    return false;
  }
  out = std::move(*text);
  return true;
}

AgentConfig AgentConfig::parse(const std::filesystem::path& file, std::vector<ConfigProblem>& problems) {
  std::string text;
  if (!read_config_text(file, text, problems)) return AgentConfig{};
  return parse_text(file, text, problems);
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

}  // namespace postwatch::agent
