// postwatch-agent emit: one event spooled, sent, and waited for by a one-shot agent.
#include "agent_commands.hpp"
#include "running_agent.hpp"

#include "postwatch/agent/event_json.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <stdexcept>

namespace postwatch::agent::cli {

int cmd_emit(const Args& args, const std::shared_ptr<spdlog::logger>& log) {
  auto loaded = load_config(args.get("config"), log.get());
  if (!args.flag("indicator") || !args.flag("value")) throw std::invalid_argument("emit needs --indicator and --value");
  nlohmann::json j;
  j["indicator"] = args.get("indicator");
  const Indicator* ind = loaded.catalogue->find_indicator(args.get("indicator"));
  std::string value = args.get("value");
  if (ind && ind->kind == ValueKind::Text)
    j["value"] = value;
  else if (value == "true" || value == "false")
    j["value"] = value == "true";
  else {
    try {
      std::size_t used = 0;
      j["value"] = std::stod(value, &used);
      if (used != value.size()) throw std::invalid_argument(value);
    } catch (const std::exception&) {
      std::cerr << "postwatch-agent: --value '" << value << "' is not a number\n";
      return 2;
    }
  }
  if (args.flag("note")) j["note"] = args.get("note");
  if (args.flag("observed-at-ms")) j["observed_at_ms"] = std::stoll(args.get("observed-at-ms"));
  IndicatorEvent ev;
  if (auto err = parse_event_json(j.dump(), *loaded.catalogue, ev); !err.empty()) {
    std::cerr << "postwatch-agent: rejected: " << err << "\n";
    return 1;
  }
  loaded.config.batch_max_delay = std::chrono::milliseconds(0);  // one event: send at once
  loaded.config.one_shot = true;
  if (args.flag("expect-every-s")) {
    int every = std::stoi(args.get("expect-every-s"));
    if (every < 0 || every > 31 * 24 * 3600) throw std::invalid_argument("--expect-every-s must be 0 to 2678400");
    loaded.config.expect_every = std::chrono::seconds(every);
  }
  auto agent = make_agent(loaded, log);
  auto r = agent->submit(std::move(ev));
  if (!r.accepted) {
    std::cerr << "postwatch-agent: rejected: " << r.error << "\n";
    return 1;
  }
  agent->start();
  auto timeout = std::chrono::seconds(std::stoi(args.get("timeout-s", "15")));
  if (!agent->wait_until_drained(timeout)) {
    auto s = agent->stats();
    std::cerr << "postwatch-agent: ";
    if (loaded.config.aggregator_confirms() && s.sent_through_seq >= r.seq)
      std::cerr << "broker " << loaded.config.broker_uri << " acknowledged seq " << r.seq
                << " but the aggregator did not confirm it within " << timeout.count() << " s";
    else
      std::cerr << "broker " << loaded.config.broker_uri << " did not acknowledge within " << timeout.count() << " s ("
                << s.last_error << ")";
    std::cerr << "; seq " << r.seq << " stays in the spool directory "
              << std::filesystem::absolute(loaded.config.spool.dir).string() << " and is sent by the next run\n";
    return 3;
  }
  std::cout << "sent seq " << r.seq << " to " << agent->events_topic()
            << (loaded.config.aggregator_confirms() ? ", confirmed by the aggregator" : ", acknowledged by the broker")
            << "\n";
  return 0;
}

}  // namespace postwatch::agent::cli
