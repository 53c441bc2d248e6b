#include "feed/stats_routes.hpp"

#include "feed/figures.hpp"

#include <nlohmann/json.hpp>

namespace postwatch::aggregator {
using nlohmann::json;

StatsRoutes::StatsRoutes(const BoardReads& board, const DeliveryFigures& delivery, const OperatorDesks& desks) {
  // In the order /metrics lists them.
  FigureRegistry& r = figures_;
  add_ingest_figures(r, delivery.ingest, delivery.presence, board.agents);
  if (delivery.latency)
    r.histogram("postwatch_ingest_latency_seconds",
                "Time from an event's observed_at to its being applied to the state (agent clock to ours).",
                *delivery.latency);
  if (board.store) add_store_figures(r, *board.store);
  add_presence_figures(
      r, delivery.presence,
      [&cat = board.catalogue, silent = board.silent] {
        std::uint64_t n = 0;
        for (std::uint32_t p = 0; p < cat.posts().size(); ++p) n += silent && p < silent->size() && (*silent)[p];
        return n;
      },
      delivery.ready);
  add_stream_figures(r, delivery.stream);
  add_status_figures(r, board.catalogue, board.board);
  if (delivery.flow) add_flow_figures(r, delivery.flow);
  if (delivery.confirm) add_confirm_figures(r, *delivery.confirm);
  if (delivery.outbound) add_outbound_figures(r, *delivery.outbound);
  if (delivery.notifications) add_notification_figures(r, delivery.notifications);
  add_trust_figures(r, delivery.ingest, delivery.presence, desks.trust);
  add_fleet_figures(r, board.agents, desks.commands, desks.rollouts);
  add_alarm_figures(r, board.board);
}

HttpResponse StatsRoutes::stats() const { return json_response(http::status::ok, figures_.stats()); }

HttpResponse StatsRoutes::metrics() const {
  MetricsText m;
  figures_.write_metrics(m);
  HttpResponse res{http::status::ok, 11};
  res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
  res.set(http::field::cache_control, "no-store");
  res.body() = m.text();
  return res;
}

}  // namespace postwatch::aggregator
