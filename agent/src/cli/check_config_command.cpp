// postwatch-agent --check-config FILE: every problem of the config and of what it names, or
// what the agent would run with it.
#include "agent_commands.hpp"

#include <cstdio>
#include <iostream>
#include <sstream>

namespace postwatch::agent::cli {
namespace {

// The inputs `run` starts besides stdin/--fifo, one per line, for --check-config.
std::string describe_inputs(const AgentConfig& c) {
  std::ostringstream out;
  if (c.local_api.enabled) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", c.local_api.mode);
    out << "  input local_api: socket " << c.local_api.socket.string() << " (mode " << mode << ")\n";
  }
  if (c.drop_dir.enabled)
    out << "  input drop_dir: " << c.drop_dir.dir.string() << ", polled every " << c.drop_dir.poll_interval.count()
        << " s\n";
  if (c.probes.enabled) {
    out << "  input probes: every " << c.probes.interval.count() << " s:";
    for (auto [on, what] : {std::pair{c.probes.cpu, "cpu"},
                            {c.probes.memory, "memory"},
                            {c.probes.disk, "disk"},
                            {c.probes.uptime, "uptime"},
                            {c.probes.uplink, "uplink"},
                            {c.probes.clock, "clock"}})
      if (on) out << " " << what;
    out << "\n";
  }
  for (const auto& s : c.scripts)
    out << "  input script: " << s.indicator << " every " << s.interval.count() << " s (timeout " << s.timeout.count()
        << " s): " << s.command[0] << "\n";
  return out.str();
}

}  // namespace

int cmd_check_config(const std::string& file) {
  ConfigCheck check = AgentConfig::validate(file, default_catalogue_path());
  if (check.problems.empty()) {
    std::cout << file << ": ok (agent " << check.config->agent_id << ", post " << check.config->post_id
              << ", catalogue " << check.catalogue->indicators().size() << " indicators, broker "
              << check.config->broker_uri << (check.config->uses_tls() ? " with TLS" : " PLAINTEXT");
    for (const auto& f : check.config->broker_fallbacks) std::cout << ", then " << f;
    std::cout << ")\n";
    std::cout << describe_inputs(*check.config);
    if (const auto& f = check.config->fleet; f.enabled())
      std::cout << "  fleet bundles: signed by a key in " << f.key_file.string() << ", held in " << f.state_dir.string()
                << (f.allow_scripts ? " (a bundle may add script probes)" : "") << "\n";
    return 0;
  }
  std::cout << check.describe_all() << "\n";
  std::size_t warnings = check.problems.size() - check.errors();
  std::cout << file << ": " << check.errors() << " error(s)";
  if (warnings) std::cout << ", " << warnings << " warning(s)";
  std::cout << "\n";
  return 2;
}

}  // namespace postwatch::agent::cli
