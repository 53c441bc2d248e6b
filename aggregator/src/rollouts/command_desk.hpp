// Remote commands the operations centre sends to one agent (docs/fleet.md, "Remote commands"):
// each agent's pending commands are one retained message on its own command topic, so an agent
// that is offline finds them when it connects. A command leaves that message when the agent
// answers it or when its time-to-live runs out (judged on this aggregator's clock, so an agent
// with a wrong clock neither runs an expired command nor drops a live one). Kept in one JSON
// file, written whole and renamed, so a restarted aggregator still withdraws and records them.
#pragma once

#include "postwatch/fleet_command.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace spdlog {
class logger;
}

namespace postwatch::aggregator {

struct SentCommand {
  enum class State { Pending, Done, Failed, Expired };
  FleetCommand command;
  std::string post, agent, by;
  std::int64_t issued_at_ms = 0, answered_at_ms = 0;
  State state = State::Pending;
  std::string error;        // Failed: the agent's reason
  std::string result_json;  // Done: what the agent said
  nlohmann::json to_json() const;
};
std::string_view to_string(SentCommand::State s);

class CommandDesk {
 public:
  CommandDesk(std::filesystem::path file, std::shared_ptr<spdlog::logger> log);

  using Publish = std::function<void(const std::string& topic, const std::string& payload)>;  // retained
  static constexpr std::int64_t kMaxTtlMs = 7LL * 86400 * 1000;

  // A new command for one agent (its id is assigned here); publishes the agent's list. Throws
  // std::invalid_argument for a command agents would refuse or a TTL outside 1 s to 7 days.
  const SentCommand& send(const std::string& post, const std::string& agent, FleetCommand command, std::int64_t ttl_ms,
                          const std::string& by, std::int64_t now_ms, const Publish& publish);
  // An agent's answer; false when it names no pending command of that agent (late, forged, or
  // answered already).
  bool on_result(const std::string& post, const std::string& agent, const FleetCommandResult& result,
                 std::int64_t now_ms, const Publish& publish);
  // Withdraws what expired.
  void tick(std::int64_t now_ms, const Publish& publish);

  const SentCommand* find(const std::string& id) const;
  // Newest first, at most `limit`.
  std::vector<const SentCommand*> newest(std::size_t limit) const;
  std::size_t count(SentCommand::State state) const;

 private:
  void publish_list(const std::string& post, const std::string& agent, const Publish& publish) const;
  void save() const;

  std::filesystem::path file_;
  std::shared_ptr<spdlog::logger> log_;
  std::map<std::uint64_t, SentCommand> commands_;  // by number: "c<number>" is the id
};

}  // namespace postwatch::aggregator
