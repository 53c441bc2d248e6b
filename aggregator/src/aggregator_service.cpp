#include "postwatch/aggregator/aggregator_service.hpp"

#include "feed/api_routes.hpp"
#include "feed/http_server.hpp"
#include "ingest/agent_presence.hpp"
#include "ingest/batch_ingest.hpp"
#include "ingest/mqtt_ingest.hpp"
#include "postwatch/clock.hpp"
#include "postwatch/topics.hpp"
#include "rollup/goal_rollup.hpp"
#include "rollup/indicator_state.hpp"

#include <spdlog/spdlog.h>

namespace postwatch::aggregator {

struct AggregatorService::Impl {
  Impl(boost::asio::io_context& io, AggregatorOptions o, std::shared_ptr<const IndicatorCatalogue> c,
       std::shared_ptr<spdlog::logger> l)
      : options(std::move(o)),
        catalogue(std::move(c)),
        log(std::move(l)),
        state(*catalogue),
        rollup(*catalogue),
        ingest(*catalogue, state, log),
        presence(*catalogue, log),
        routes(FeedSources{*catalogue, state, ingest, presence, rollup, [this] { return mqtt.subscribed(); }}),
        http(io, log, [this](const HttpRequest& req) { return routes.handle(req); }),
        mqtt(io, options.broker_uri, options.client_id,
             {std::string(topics::events_filter), std::string(topics::state_filter),
              std::string(topics::heartbeat_filter)},
             log, [this](const std::string& topic, const std::string& payload) { dispatch(topic, payload); }) {}

  void dispatch(const std::string& topic, const std::string& payload) {
    std::span<const std::uint8_t> bytes{reinterpret_cast<const std::uint8_t*>(payload.data()), payload.size()};
    auto now = now_utc_ms();
    if (topic.ends_with("/events"))
      ingest.on_message(topic, bytes, now);
    else
      presence.on_message(topic, bytes, now);
  }

  AggregatorOptions options;
  std::shared_ptr<const IndicatorCatalogue> catalogue;
  std::shared_ptr<spdlog::logger> log;
  IndicatorState state;
  GoalRollup rollup;
  BatchIngest ingest;
  AgentPresence presence;
  ApiRoutes routes;
  HttpServer http;
  MqttIngest mqtt;
};

AggregatorService::AggregatorService(boost::asio::io_context& io, AggregatorOptions options,
                                     std::shared_ptr<const IndicatorCatalogue> catalogue,
                                     std::shared_ptr<spdlog::logger> log)
    : impl_(std::make_unique<Impl>(io, std::move(options), std::move(catalogue), std::move(log))) {}

AggregatorService::~AggregatorService() { stop(); }

void AggregatorService::start() {
  impl_->http.listen(impl_->options.http_address, impl_->options.http_port);
  impl_->mqtt.start();
}

void AggregatorService::stop() {
  impl_->mqtt.stop();
  impl_->http.close();
}

unsigned short AggregatorService::http_port() const { return impl_->http.port(); }

}  // namespace postwatch::aggregator
