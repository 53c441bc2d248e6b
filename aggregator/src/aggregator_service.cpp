#include "postwatch/aggregator/aggregator_service.hpp"

#include "feed/api_routes.hpp"
#include "feed/http_server.hpp"
#include "feed/snapshot_json.hpp"
#include "ingest/agent_presence.hpp"
#include "ingest/batch_ingest.hpp"
#include "ingest/mqtt_ingest.hpp"
#include "postwatch/clock.hpp"
#include "postwatch/topics.hpp"
#include "rollup/goal_rollup.hpp"
#include "rollup/indicator_state.hpp"
#include "rollup/post_liveness.hpp"
#include "rollup/status_board.hpp"
#include "store/event_store.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/steady_timer.hpp>

namespace postwatch::aggregator {

struct AggregatorService::Impl {
  Impl(boost::asio::io_context& io, AggregatorOptions o, std::shared_ptr<const IndicatorCatalogue> c,
       std::shared_ptr<spdlog::logger> l)
      : options(std::move(o)),
        catalogue(std::move(c)),
        log(std::move(l)),
        store(StoreOptions{options.data_dir / "postwatch.sqlite"}, *catalogue, log),
        state(*catalogue),
        rollup(*catalogue, RollupPolicy{options.hysteresis_band, options.min_coverage}),
        board(*catalogue, BoardPolicy{options.min_duration_ms}),
        ingest(*catalogue, state, log, IngestPolicy{options.allowed_lateness_ms}, &store),
        presence(*catalogue, log),
        routes(FeedSources{*catalogue, state, ingest, presence, board, &store, [this] { return mqtt.subscribed(); },
                           [this](const Alarm& a) { on_alarm_changed(a); }}),
        http(io, log, [this](const HttpRequest& req) { return routes.handle(req); }),
        mqtt(io, options.broker_uri, options.client_id,
             {std::string(topics::events_filter), std::string(topics::state_filter),
              std::string(topics::heartbeat_filter)},
             log, [this](const std::string& topic, const std::string& payload) { dispatch(topic, payload); }),
        ticker(io) {}

  void dispatch(const std::string& topic, const std::string& payload) {
    std::span<const std::uint8_t> bytes{reinterpret_cast<const std::uint8_t*>(payload.data()), payload.size()};
    auto now = now_utc_ms();
    if (topic.ends_with("/events"))
      ingest.on_message(topic, bytes, now);
    else
      presence.on_message(topic, bytes, now);
  }

  // Rebuilds the state a previous run had: the same events through the same ingest.
  void recover() {
    auto started = std::chrono::steady_clock::now();
    std::uint64_t n = store.replay([&](const StoredEventRow& r) {
      EventView e;
      e.seq = r.seq;
      e.observed_at_ms = r.observed_at_ms;
      e.indicator = r.indicator;
      e.kind = r.kind;
      e.number = r.number;
      e.text = r.text;
      ingest.replay(r.post, r.agent, e, r.received_at_ms, r.late);
    });
    std::vector<ShownStatus> goals(catalogue->goals().size()), pillars(catalogue->pillars().size());
    for (const auto& h : store.latest_history()) {
      ShownStatus s{h.status, h.at_ms, h.status, 0, h.score};
      if (h.scope == "goal") {
        for (std::size_t i = 0; i < goals.size(); ++i)
          if (std::to_string(catalogue->goals()[i].id) == h.id) goals[i] = s;
      } else {
        for (std::size_t i = 0; i < pillars.size(); ++i)
          if (catalogue->pillars()[i].id == h.id) pillars[i] = s;
      }
    }
    board.restore(std::move(goals), std::move(pillars), store.load_alarms());
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
    if (n > 0) log->info("store: replayed {} event(s) in {} ms; {} alarm(s) restored", n, ms, board.alarms().size());
  }

  void on_alarm_changed(const Alarm& a) {
    store.save_alarm(a);
    publish_alarm(a);
  }

  void publish_alarm(const Alarm& a) {
    if (options.publish_snapshots)
      mqtt.publish(std::string(topics::prefix) + "/feed/alarms", alarm_json(a).dump(), 1, false);
  }

  void tick() {
    auto now = now_utc_ms();
    auto silent = silent_posts(*catalogue, presence, state, now, LivenessPolicy{options.missed_heartbeats});
    auto snap = rollup.compute(state, now, silent, board.last().cells);
    auto changes = board.tick(snap, silent, now);
    bool periodic = now - last_history_ms >= options.history_interval_ms;
    for (std::size_t g = 0; g < board.goals().size(); ++g) {
      const auto& s = board.goals()[g];
      std::string id = std::to_string(catalogue->goals()[g].id);
      bool changed = std::any_of(changes.statuses.begin(), changes.statuses.end(),
                                 [&](const StatusChange& c) { return c.scope == "goal" && c.id == id; });
      if (changed || periodic) store.record_history({now, "goal", id, s.shown, s.score});
      if (changed && options.publish_snapshots)
        mqtt.publish(topics::goal_feed(catalogue->goals()[g].id), goal_snapshot_json(*catalogue, board, g).dump(), 1,
                     true);
    }
    for (std::size_t p = 0; p < board.pillars().size(); ++p) {
      const auto& s = board.pillars()[p];
      const std::string& id = catalogue->pillars()[p].id;
      bool changed = std::any_of(changes.statuses.begin(), changes.statuses.end(),
                                 [&](const StatusChange& c) { return c.scope == "pillar" && c.id == id; });
      if (changed || periodic) store.record_history({now, "pillar", id, s.shown, s.score});
      if (changed && options.publish_snapshots)
        mqtt.publish(topics::pillar_feed(id), pillar_snapshot_json(*catalogue, board, p).dump(), 1, true);
    }
    if (periodic) last_history_ms = now;
    for (auto id : changes.alarms)
      if (const Alarm* a = board.find_alarm(id)) on_alarm_changed(*a);
    for (const auto& c : changes.statuses)
      log->info("{} {}: {} -> {} (score {:.1f})", c.scope, c.id, to_string(c.from), to_string(c.to), c.score);
  }

  void schedule_tick() {
    ticker.expires_after(std::chrono::milliseconds(options.tick_ms));
    ticker.async_wait([this](boost::system::error_code ec) {
      if (ec) return;
      tick();
      schedule_tick();
    });
  }

  AggregatorOptions options;
  std::shared_ptr<const IndicatorCatalogue> catalogue;
  std::shared_ptr<spdlog::logger> log;
  EventStore store;
  IndicatorState state;
  GoalRollup rollup;
  StatusBoard board;
  BatchIngest ingest;
  AgentPresence presence;
  ApiRoutes routes;
  HttpServer http;
  MqttIngest mqtt;
  boost::asio::steady_timer ticker;
  std::int64_t last_history_ms = 0;
};

AggregatorService::AggregatorService(boost::asio::io_context& io, AggregatorOptions options,
                                     std::shared_ptr<const IndicatorCatalogue> catalogue,
                                     std::shared_ptr<spdlog::logger> log)
    : impl_(std::make_unique<Impl>(io, std::move(options), std::move(catalogue), std::move(log))) {}

AggregatorService::~AggregatorService() { stop(); }

void AggregatorService::start() {
  impl_->recover();
  impl_->store.start();
  impl_->tick();  // statuses are right before the first request
  impl_->http.listen(impl_->options.http_address, impl_->options.http_port);
  impl_->mqtt.start();
  impl_->schedule_tick();
}

void AggregatorService::stop() {
  impl_->ticker.cancel();
  impl_->mqtt.stop();
  impl_->http.close();
  impl_->store.flush(std::chrono::seconds(5));
}

unsigned short AggregatorService::http_port() const { return impl_->http.port(); }

}  // namespace postwatch::aggregator
