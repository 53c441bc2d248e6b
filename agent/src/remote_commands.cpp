#include "postwatch/agent/remote_commands.hpp"

#include "postwatch/agent/agent.hpp"
#include "postwatch/agent/script_probe.hpp"

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <fstream>

namespace postwatch::agent {

RemoteCommands::RemoteCommands(std::filesystem::path state_dir, std::shared_ptr<spdlog::logger> log)
    : file_(std::move(state_dir) / "commands.json"), log_(std::move(log)) {
  std::ifstream in(file_);
  if (!in) return;
  auto j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_object() && j["ran"].is_array())
    for (const auto& id : j["ran"])
      if (id.is_string()) ran_.insert(id.get<std::string>());
}

void RemoteCommands::offer(std::string payload) {
  std::lock_guard lk(mu_);
  newest_ = std::move(payload);
}

std::vector<FleetCommand> RemoteCommands::take() {
  std::optional<std::string> text;
  {
    std::lock_guard lk(mu_);
    text.swap(newest_);
  }
  if (!text) return {};
  std::vector<FleetCommand> listed;
  if (!text->empty()) {
    std::string error;
    auto decoded = decode_fleet_commands(*text, error);
    if (!decoded) {
      log_->warn("remote commands refused: {} ({} bytes)", error, text->size());
      return {};
    }
    listed = std::move(*decoded);
  }
  std::set<std::string> still;
  std::vector<FleetCommand> out;
  for (auto& c : listed) {
    still.insert(c.id);
    if (!ran_.count(c.id)) out.push_back(std::move(c));
  }
  // Ids no longer listed cannot come back (the aggregator never reuses one): forget them.
  const auto before = ran_;
  std::erase_if(ran_, [&](const std::string& id) { return !still.count(id); });
  for (const auto& c : out) ran_.insert(c.id);
  if (ran_ != before) save();
  return out;
}

void RemoteCommands::save() const {
  const auto tmp = file_.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << nlohmann::json{{"ran", ran_}}.dump() << "\n";
    out.flush();
    if (!out) {
      log_->error("cannot write {}: a command could run again after a restart", file_.string());
      return;
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, file_, ec);
  if (ec) log_->error("cannot write {}: {}", file_.string(), ec.message());
}

FleetCommandResult run_fleet_command(const FleetCommand& c, Agent& agent,
                                     const std::vector<std::unique_ptr<EventSource>>& sources,
                                     const std::function<std::string()>& status_json) {
  FleetCommandResult r;
  r.id = c.id;
  r.name = c.name;
  r.ok = true;
  if (c.name == "rebirth") {
    agent.rebirth();
  } else if (c.name == "flush") {
    agent.flush();
    r.result_json = nlohmann::json{{"spool_events", agent.stats().backlog.events}}.dump();
  } else if (c.name == "resend-from") {
    const auto from = agent.resend_from(c.seq);
    if (from == 0) {
      r.ok = false;
      r.error = agent.config().aggregator_confirms()
                    ? "the spool holds nothing from seq " + std::to_string(c.seq) + " (confirmed and released)"
                    : "delivery.confirm is broker: the spool releases events on the broker's acknowledgement";
    } else {
      r.result_json = nlohmann::json{{"from_seq", from}}.dump();
    }
  } else if (c.name == "run-probe") {
    ScriptProbe* probe = nullptr;
    for (const auto& s : sources)
      if (auto* p = dynamic_cast<ScriptProbe*>(s.get()); p && p->indicator() == c.probe) probe = p;
    if (!probe) {
      r.ok = false;
      r.error = "no script probe for indicator '" + c.probe + "' on this agent";
    } else if (!probe->run_once()) {
      r.ok = false;
      r.error = "the probe ran and failed: " + probe->problem();
    }
  } else if (c.name == "report-status") {
    r.result_json = status_json();
  } else {
    r.ok = false;
    r.error = "unknown command '" + c.name + "'";
  }
  return r;
}

}  // namespace postwatch::agent
