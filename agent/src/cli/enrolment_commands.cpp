// postwatch-agent enrol and rotate-key (docs/security.md): the agent's signing key made or
// replaced, and accepted by the aggregator.
#include "agent_commands.hpp"

#include "postwatch/agent/enrolment_client.hpp"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <stdexcept>

namespace postwatch::agent::cli {

int cmd_enrol(const Args& args, const std::shared_ptr<spdlog::logger>& log) {
  if (!args.flag("token"))
    throw std::invalid_argument("enrol needs --token (as POST /api/v1/enrolment-tokens gave it)");
  auto loaded = load_config(args.get("config"), log.get());
  std::string token = args.get("token");
  std::error_code ec;
  if (!token.starts_with("pwt1.") && std::filesystem::is_regular_file(token, ec)) {  // a file holding it
    std::ifstream in(token);
    std::getline(in, token);
  }
  auto out = enrol_agent(loaded.config, *loaded.catalogue, token,
                         std::chrono::seconds(std::stoi(args.get("timeout-s", "30"))), *log);
  (out.exit_code == 0 ? std::cout : std::cerr)
      << (out.exit_code == 0 ? "" : "postwatch-agent: ") << out.message << "\n";
  return out.exit_code;
}

int cmd_rotate_key(const Args& args, const std::shared_ptr<spdlog::logger>& log) {
  auto loaded = load_config(args.get("config"), log.get());
  auto out = rotate_agent_key(loaded.config, *loaded.catalogue,
                              std::chrono::seconds(std::stoi(args.get("timeout-s", "30"))), *log);
  (out.exit_code == 0 ? std::cout : std::cerr)
      << (out.exit_code == 0 ? "" : "postwatch-agent: ") << out.message << "\n";
  return out.exit_code;
}

}  // namespace postwatch::agent::cli
