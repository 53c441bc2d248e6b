// postwatch-agent send: events handed to the running agent through its local API socket.
#include "agent_commands.hpp"

#include "postwatch/agent/local_api.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <iostream>
#include <vector>

namespace postwatch::agent::cli {

int cmd_send(const Args& args) {
  auto config = AgentConfig::load(args.get("config"));
  if (!config.local_api.enabled) {
    std::cerr << "postwatch-agent: " << args.get("config") << " has no local_api section: no socket to send to\n";
    return 2;
  }
  std::vector<std::string> requests;
  if (!args.positional.empty()) {
    requests.push_back(args.positional);
  } else {
    for (std::string line; std::getline(std::cin, line);)
      if (line.find_first_not_of(" \t\r") != std::string::npos) requests.push_back(line);
  }
  bool all_accepted = true;
  for (const auto& request : requests) {
    std::string answer;
    try {
      answer = local_api_request(config.local_api.socket, request, std::chrono::seconds(30));
    } catch (const std::exception& e) {
      std::cerr << "postwatch-agent: " << e.what() << "\n";
      return 4;
    }
    std::cout << answer << "\n";
    auto j = nlohmann::json::parse(answer, nullptr, false);
    if (j.is_discarded() || j.contains("error")) all_accepted = false;
    if (j.is_object() && j["results"].is_array())
      for (const auto& r : j["results"])
        if (!r.value("accepted", false)) all_accepted = false;
  }
  return all_accepted ? 0 : 1;
}

}  // namespace postwatch::agent::cli
