// RunningAgent: an Agent with its spool, and the inputs its config enables.
#include "running_agent.hpp"

#include "postwatch/agent/device_probes.hpp"
#include "postwatch/agent/drop_directory.hpp"
#include "postwatch/agent/local_api.hpp"
#include "postwatch/agent/script_probe.hpp"
#include "postwatch/agent/spool_store.hpp"
#include "postwatch/fleet_command.hpp"

#include <spdlog/spdlog.h>

namespace postwatch::agent::cli {
namespace {

// The inputs the config enables, each on its own thread, all submitting to `agent`.
std::vector<std::unique_ptr<EventSource>> make_sources(const Loaded& l, Agent& agent,
                                                       const std::shared_ptr<spdlog::logger>& log) {
  EventSink sink = [&agent](IndicatorEvent e) { return agent.submit(std::move(e)); };
  const AgentConfig& c = l.config;
  std::vector<std::unique_ptr<EventSource>> sources;
  if (c.local_api.enabled) sources.push_back(std::make_unique<LocalApiServer>(c.local_api, l.catalogue, sink, log));
  if (c.drop_dir.enabled) sources.push_back(std::make_unique<DropDirectoryWatcher>(c.drop_dir, l.catalogue, sink, log));
  if (c.probes.enabled)
    sources.push_back(std::make_unique<DeviceProbes>(c.probes, c.broker_uri, c.spool.dir, sink, log, c.uplink_proxy));
  for (const auto& script : c.scripts) sources.push_back(std::make_unique<ScriptProbe>(script, l.catalogue, sink, log));
  return sources;
}

}  // namespace

std::unique_ptr<Agent> make_agent(const Loaded& l, std::shared_ptr<spdlog::logger> log) {
  SpoolOptions spool = l.config.spool;
  spool.urgent = [cat = l.catalogue](const IndicatorEvent& e) {
    const Indicator* ind = cat->find_indicator(e.indicator);
    return ind && ind->is_urgent(e.number);
  };
  auto backlog = std::make_unique<SpoolStore>(spool, log);
  return std::make_unique<Agent>(l.config, l.catalogue, std::move(backlog), std::move(log));
}

std::unique_ptr<RunningAgent> start_agent(Loaded loaded, FleetBundles* fleet, RemoteCommands* commands,
                                          const std::shared_ptr<spdlog::logger>& log) {
  auto run = std::make_unique<RunningAgent>();
  run->loaded = std::move(loaded);
  run->agent = make_agent(run->loaded, log);
  if (fleet) {
    const auto& c = run->loaded.config;
    const auto* post = run->loaded.catalogue->find_post(c.post_id);
    auto topics = fleet->topics(post ? post->region : "");
    const auto commands_topic = command_topic(c.post_id, c.agent_id);
    if (commands) topics.push_back(commands_topic);
    run->agent->subscribe_also(topics,
                               [fleet, commands, commands_topic](const std::string& topic, std::string payload) {
                                 if (commands && topic == commands_topic)
                                   commands->offer(std::move(payload));
                                 else
                                   fleet->offer(std::move(payload));
                               });
    run->agent->set_fleet_report(fleet->report());
  }
  run->agent->start();
  run->sources = make_sources(run->loaded, *run->agent, log);
  for (auto& source : run->sources) source->start();
  return run;
}

void stop_agent(RunningAgent& run) {
  for (auto& source : run.sources) source->stop();
  run.agent->stop();
}

void run_commands(RemoteCommands& commands, RunningAgent& run, const FleetBundles* fleet, const EarlierCounts& earlier,
                  spdlog::logger& log) {
  for (const auto& c : commands.take()) {
    auto status = [&] {
      auto j = status_json(*run.agent, fleet, earlier);
      j["inputs"] = nlohmann::json::array();
      for (const auto& s : run.sources) j["inputs"].push_back({{"source", s->name()}, {"problem", s->problem()}});
      return j.dump();
    };
    auto r = run_fleet_command(c, *run.agent, run.sources, status);
    if (r.ok)
      log.info("remote command {} ({}) done", c.name, c.id);
    else
      log.warn("remote command {} ({}) failed: {}", c.name, c.id, r.error);
    const auto& cfg = run.loaded.config;
    run.agent->publish_message(command_result_topic(cfg.post_id, cfg.agent_id), encode_fleet_command_result(r));
  }
}

}  // namespace postwatch::agent::cli
