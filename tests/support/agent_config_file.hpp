// The config file a test hands `postwatch-agent run --config`: the fields every such test sets
// the same way (broker, identity, plaintext on the loopback broker, the build's catalogue, a
// spool that never fsyncs), then what the test itself looks at, set on json().
#pragma once

#include "support/test_support.hpp"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <string>

namespace postwatch::test {

class AgentConfigFile {
 public:
  AgentConfigFile(const std::string& broker_uri, const std::string& agent_id, const std::string& post_id,
                  const std::filesystem::path& spool_dir)
      : json_{{"broker_uri", broker_uri},
              {"agent_id", agent_id},
              {"post_id", post_id},
              {"allow_plaintext", true},
              {"catalogue_file", catalogue_path().string()},
              {"spool", {{"dir", spool_dir.string()}, {"fsync", "never"}}}} {}

  // Top-level settings: set("heartbeat_interval_s", 1).
  AgentConfigFile& set(const std::string& key, nlohmann::json value) {
    json_[key] = std::move(value);
    return *this;
  }
  nlohmann::json& json() { return json_; }
  const nlohmann::json& json() const { return json_; }
  // Writes the config, indented as an operator's file would be.
  void write(const std::filesystem::path& file) const { std::ofstream(file) << json_.dump(2); }

 private:
  nlohmann::json json_;
};

}  // namespace postwatch::test
