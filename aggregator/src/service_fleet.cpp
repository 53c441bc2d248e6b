// The fleet (docs/fleet.md): rollouts stepped on the agents' reports, a rollout's catalogue
// adopted before any agent gets it, and remote commands' results.
#include "service_impl.hpp"

namespace postwatch::aggregator {

CommandDesk::Publish AggregatorService::Impl::publish_retained() {
  return [this](const std::string& topic, const std::string& payload) {
    outbox.publish(topic, payload, true, OutboundPriority::Snapshot);
  };
}

void AggregatorService::Impl::adopt_catalogue(const FleetBundle& b) {
  std::optional<IndicatorCatalogue> next;
  try {
    next.emplace(IndicatorCatalogue::parse(b.catalogue, "bundle v" + std::to_string(b.version)));
  } catch (const CatalogueError& e) {
    throw RolloutError(400, std::string("the bundle's catalogue does not load: ") + e.what());
  }
  if (auto why = catalogue_change_problem(*catalogue, *next); !why.empty())
    throw RolloutError(409, "this aggregator cannot adopt the bundle's catalogue: " + why);
  if (next->version() <= catalogue->version()) return;  // nothing it does not know already
  if (jet)
    throw RolloutError(409, "catalogue_version " + std::to_string(next->version()) +
                                " is newer than the cluster's: install it on every instance first "
                                "(rollouts of new catalogues are not clustered yet, docs/fleet.md)");
  if (!restart_on_catalogue) throw RolloutError(503, "this aggregator cannot restart itself onto a new catalogue");
  std::string in_use_text;
  if (!options.catalogue_file.empty()) {
    std::ifstream in(options.catalogue_file, std::ios::binary);
    in_use_text.assign(std::istreambuf_iterator<char>(in), {});
  }
  try {
    AdoptedCatalogues(options.data_dir / "catalogues")
        .adopt(b.catalogue, next->version(), in_use_text, catalogue->version());
  } catch (const std::runtime_error& e) {
    throw RolloutError(500, std::string("the catalogue cannot be adopted: ") + e.what());
  }
  log->warn(
      "adopted catalogue_version {} ({} indicators) from fleet bundle v{}: restarting on it; the rollout's "
      "agents get the bundle once it runs",
      next->version(), next->indicators().size(), b.version);
  // After the API's answer left: the restart closes the HTTP server.
  restart_timer.expires_after(std::chrono::milliseconds(300));
  restart_timer.async_wait([this](const boost::system::error_code& ec) {
    if (!ec && restart_on_catalogue) restart_on_catalogue();
  });
}

void AggregatorService::Impl::tick_rollouts(std::int64_t now) {
  if (rollouts.count(RolloutPlan::Phase::Running) == 0) return;
  rollouts.tick(
      [this](const RolloutAgent& a) -> const FleetReport* {
        auto post = catalogue->post_index(a.post);
        const AgentRecord* r = post ? agents.find(*post, a.agent) : nullptr;
        return r && r->has_presence && r->presence.has_fleet ? &r->presence.fleet : nullptr;
      },
      [this](const std::string& topic, const std::string& payload) {
        outbox.publish(topic, payload, true, OutboundPriority::Snapshot);
      },
      now);
}

void AggregatorService::Impl::on_command_result(const std::string& post, const std::string& agent,
                                                const std::string& payload, std::int64_t now) {
  std::string error;
  auto r = decode_fleet_command_result(payload, error);
  if (!r) {
    log->warn("command result from {}/{} refused: {}", post, agent, error);
    return;
  }
  if (!commands.on_result(post, agent, *r, now, publish_retained()))
    log->info("command result {} from {}/{} matches no pending command of it (answered already, or expired)", r->id,
              post, agent);
}

}  // namespace postwatch::aggregator
