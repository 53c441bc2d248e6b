#include "postwatch/fleet_command.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>

namespace postwatch {

namespace {

using json = nlohmann::json;
constexpr std::string_view kFormat = "postwatch-commands/1";
constexpr std::size_t kMaxText = 64 * 1024;
constexpr std::string_view kPrefix = "postwatch/v1/fleet/";

bool id_ok(const std::string& s) {
  return !s.empty() && s.size() <= 64 && std::all_of(s.begin(), s.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '-' || c == '_' || c == '.';
  });
}

}  // namespace

const std::vector<std::string_view>& fleet_command_names() {
  static const std::vector<std::string_view> names{"rebirth", "flush", "resend-from", "run-probe", "report-status"};
  return names;
}

std::string check_fleet_command(const FleetCommand& c) {
  if (!id_ok(c.id)) return "command id must be 1 to 64 letters, digits, '-', '_' or '.'";
  const auto& names = fleet_command_names();
  if (std::find(names.begin(), names.end(), c.name) == names.end())
    return "unknown command '" + c.name + "' (rebirth, flush, resend-from, run-probe, report-status)";
  if (c.name == "resend-from" && c.seq == 0) return "resend-from needs a seq from 1";
  if (c.name == "run-probe" && c.probe.empty()) return "run-probe needs the probe's indicator";
  if (c.probe.size() > 64) return "probe name over 64 bytes";
  return {};
}

std::string encode_fleet_commands(const std::vector<FleetCommand>& commands) {
  json list = json::array();
  for (const auto& c : commands) {
    json j{{"id", c.id}, {"command", c.name}, {"expires_at_ms", c.expires_at_ms}};
    if (c.name == "resend-from") j["seq"] = c.seq;
    if (c.name == "run-probe") j["probe"] = c.probe;
    list.push_back(std::move(j));
  }
  return json{{"format", kFormat}, {"commands", std::move(list)}}.dump();
}

std::optional<std::vector<FleetCommand>> decode_fleet_commands(std::string_view text, std::string& error) {
  if (text.size() > kMaxText) {
    error = "over 64 KiB";
    return std::nullopt;
  }
  auto j = json::parse(text, nullptr, false);
  if (!j.is_object() || j.value("format", "") != kFormat || !j.contains("commands") || !j["commands"].is_array()) {
    error = std::string("not a command list (") + std::string(kFormat) + ")";
    return std::nullopt;
  }
  std::vector<FleetCommand> out;
  try {
    for (const auto& c : j["commands"]) {
      FleetCommand fc;
      fc.id = c.at("id").get<std::string>();
      fc.name = c.at("command").get<std::string>();
      fc.expires_at_ms = c.value("expires_at_ms", std::int64_t{0});
      fc.seq = c.value("seq", std::uint64_t{0});
      fc.probe = c.value("probe", std::string());
      if (auto why = check_fleet_command(fc); !why.empty()) {
        error = why;
        return std::nullopt;
      }
      out.push_back(std::move(fc));
    }
  } catch (const json::exception& e) {
    error = std::string("malformed command: ") + e.what();
    return std::nullopt;
  }
  return out;
}

std::string encode_fleet_command_result(const FleetCommandResult& r) {
  json j{{"id", r.id}, {"command", r.name}, {"ok", r.ok}};
  if (r.ok)
    j["result"] = json::parse(r.result_json.empty() ? "{}" : r.result_json, nullptr, false);
  else
    j["error"] = r.error;
  return j.dump();
}

std::optional<FleetCommandResult> decode_fleet_command_result(std::string_view text, std::string& error) {
  if (text.size() > kMaxText) {
    error = "over 64 KiB";
    return std::nullopt;
  }
  auto j = json::parse(text, nullptr, false);
  FleetCommandResult r;
  try {
    if (!j.is_object()) throw json::type_error::create(302, "not a JSON object", nullptr);
    r.id = j.at("id").get<std::string>();
    r.name = j.at("command").get<std::string>();
    r.ok = j.at("ok").get<bool>();
    if (r.ok) {
      const auto& res = j.contains("result") ? j["result"] : json::object();
      if (!res.is_object()) throw json::type_error::create(302, "result is not an object", nullptr);
      r.result_json = res.dump();
    } else {
      r.error = j.value("error", std::string());
    }
  } catch (const json::exception& e) {
    error = std::string("malformed command result: ") + e.what();
    return std::nullopt;
  }
  if (!id_ok(r.id)) {
    error = "malformed command result: bad id";
    return std::nullopt;
  }
  return r;
}

std::string command_topic(std::string_view post, std::string_view agent) {
  return std::string(kPrefix) + "command/" + std::string(post) + "/" + std::string(agent);
}

std::string command_result_topic(std::string_view post, std::string_view agent) {
  return std::string(kPrefix) + "command-result/" + std::string(post) + "/" + std::string(agent);
}

bool parse_command_result_topic(std::string_view topic, std::string& post, std::string& agent) {
  // On the aggregator's path for every state and heartbeat message: nothing allocated for those.
  constexpr std::string_view prefix = "postwatch/v1/fleet/command-result/";
  if (!topic.starts_with(prefix)) return false;
  topic.remove_prefix(prefix.size());
  auto slash = topic.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 >= topic.size()) return false;
  if (topic.find('/', slash + 1) != std::string_view::npos) return false;
  post = std::string(topic.substr(0, slash));
  agent = std::string(topic.substr(slash + 1));
  return true;
}

}  // namespace postwatch
