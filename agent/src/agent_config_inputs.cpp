// The config's input sections (docs/agent.md, "Inputs"): local_api, drop_dir, probes, scripts;
// parsed with the rest of the file, checked against the catalogue and the file system by validate.
#include "agent_config_parts.hpp"

#include "postwatch/catalogue.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace postwatch::agent {
using nlohmann::json;

// A section that is present is enabled unless it says "enabled": false.
void parse_inputs(const std::filesystem::path& file, const json& root, FieldReader& r, AgentConfig& c) {
  std::string path;
  if (const json* api = r.section(root, "local_api", {"enabled", "socket", "mode", "max_batch_events"})) {
    c.local_api.enabled = true;
    r.boolean(*api, "local_api.", "enabled", c.local_api.enabled);
    path.clear();
    r.str(*api, "local_api.", "socket", path);
    if (!path.empty()) c.local_api.socket = resolve_config_path(file, path);
    std::string mode;
    r.str(*api, "local_api.", "mode", mode);
    if (!mode.empty()) {
      char* end = nullptr;
      unsigned long m = std::strtoul(mode.c_str(), &end, 8);
      if (*end != '\0' || m > 0777 || mode.size() > 4)
        r.fail("local_api.mode", "must be an octal file mode such as \"0660\" (got \"" + mode + "\")");
      else
        c.local_api.mode = static_cast<unsigned>(m);
    }
    r.uint(*api, "local_api.", "max_batch_events", c.local_api.max_batch_events, 1, 100000);
  }
  if (const json* drop = r.section(root, "drop_dir", {"enabled", "path", "poll_s", "min_age_s", "max_file_bytes"})) {
    c.drop_dir.enabled = true;
    r.boolean(*drop, "drop_dir.", "enabled", c.drop_dir.enabled);
    path.clear();
    r.str(*drop, "drop_dir.", "path", path, c.drop_dir.enabled);
    if (!path.empty()) c.drop_dir.dir = resolve_config_path(file, path);
    c.drop_dir.poll_interval = r.seconds(*drop, "drop_dir.", "poll_s", c.drop_dir.poll_interval, 1, 3600);
    c.drop_dir.min_age = r.seconds(*drop, "drop_dir.", "min_age_s", c.drop_dir.min_age, 0, 3600);
    r.uint(*drop, "drop_dir.", "max_file_bytes", c.drop_dir.max_file_bytes, 1, std::int64_t{1} << 32);
  }
  if (const json* probes = r.section(
          root, "probes",
          {"enabled", "interval_s", "cpu", "memory", "disk", "uptime", "uplink", "clock", "uplink_timeout_ms"})) {
    auto& p = c.probes;
    p.enabled = true;
    r.boolean(*probes, "probes.", "enabled", p.enabled);
    p.interval = r.seconds(*probes, "probes.", "interval_s", p.interval, 1, 86400);
    r.boolean(*probes, "probes.", "cpu", p.cpu);
    r.boolean(*probes, "probes.", "memory", p.memory);
    r.boolean(*probes, "probes.", "disk", p.disk);
    r.boolean(*probes, "probes.", "uptime", p.uptime);
    r.boolean(*probes, "probes.", "uplink", p.uplink);
    r.boolean(*probes, "probes.", "clock", p.clock);
    std::int64_t timeout = p.uplink_timeout.count();
    r.uint(*probes, "probes.", "uplink_timeout_ms", timeout, 100, 60000);
    p.uplink_timeout = std::chrono::milliseconds(timeout);
  }
  const json* scripts = FieldReader::find(root, "scripts");
  if (!scripts) return;
  if (!scripts->is_array()) return r.fail("scripts", "must be an array of {\"indicator\", \"command\", ...}");
  for (std::size_t i = 0; i < scripts->size(); ++i) {
    const json& s = (*scripts)[i];
    std::string at = "scripts[" + std::to_string(i) + "].";
    if (!s.is_object()) {
      r.fail(at.substr(0, at.size() - 1), "must be an object");
      continue;
    }
    r.unknown_keys(s, at, {"indicator", "command", "interval_s", "timeout_s"});
    ScriptProbeConfig sc;
    r.str(s, at, "indicator", sc.indicator, true);
    const json* cmd = FieldReader::find(s, "command");
    if (!cmd) {
      r.fail(at + "command", "missing (required)");
    } else if (!cmd->is_array() || cmd->empty() ||
               !std::all_of(cmd->begin(), cmd->end(), [](const json& a) { return a.is_string(); }) ||
               (*cmd)[0].get<std::string>().empty()) {
      r.fail(at + "command", "must be a non-empty array of strings: the program and its arguments (no shell)");
    } else {
      for (const auto& a : *cmd) sc.command.push_back(a.get<std::string>());
      // A program named with a path is resolved like the config's other paths; a bare name is looked up in PATH.
      if (sc.command[0].find('/') != std::string::npos) sc.command[0] = resolve_config_path(file, sc.command[0]);
    }
    sc.interval = r.seconds(s, at, "interval_s", sc.interval, 1, 86400);
    sc.timeout = r.seconds(s, at, "timeout_s", sc.timeout, 1, 3600);
    if (sc.timeout > sc.interval)
      r.fail(at + "timeout_s", "must not exceed interval_s (" + std::to_string(sc.interval.count()) + ")");
    c.scripts.push_back(std::move(sc));
  }
}

// Problems of the input sections that need the catalogue or the file system.
void check_inputs(const AgentConfig& c, const IndicatorCatalogue* catalogue, std::vector<ConfigProblem>& problems) {
  if (c.local_api.enabled) {
    auto parent = std::filesystem::absolute(c.local_api.socket).parent_path();
    if (auto why = writable_dir_problem(parent); !why.empty())
      problems.push_back({"local_api.socket", "cannot create the socket " + c.local_api.socket.string() + ": " + why});
  }
  if (c.drop_dir.enabled)
    if (auto why = writable_dir_problem(c.drop_dir.dir); !why.empty()) problems.push_back({"drop_dir.path", why});
  for (std::size_t i = 0; i < c.scripts.size(); ++i) {
    const auto& s = c.scripts[i];
    std::string at = "scripts[" + std::to_string(i) + "].";
    if (catalogue && !s.indicator.empty() && !catalogue->find_indicator(s.indicator))
      problems.push_back({at + "indicator", "'" + s.indicator + "' is not an indicator in the catalogue"});
    if (!s.command.empty() && s.command[0].find('/') != std::string::npos && ::access(s.command[0].c_str(), X_OK) != 0)
      problems.push_back({at + "command", s.command[0] + " is not an executable file: " + std::strerror(errno)});
  }
}

}  // namespace postwatch::agent
