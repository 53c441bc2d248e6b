#include "cluster/shared_figures.hpp"

#include "cluster/jetstream_cluster.hpp"
#include "store/event_store.hpp"

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

namespace postwatch::aggregator {
using nlohmann::json;

std::string SharedFigures::key_of(const StrategyReadingRow& r) {
  return r.indicator + "." + std::to_string(r.observed_at_ms);
}

std::string SharedFigures::body_of(const StrategyReadingRow& r) {
  return json{{"indicator", r.indicator},
              {"observed_at_ms", r.observed_at_ms},
              {"value", r.value},
              {"post", r.post},
              {"agent", r.agent},
              {"seq", r.seq},
              {"received_at_ms", r.received_at_ms}}
      .dump();
}

void SharedFigures::tick(JetStreamCluster& cluster, EventStore& store) {
  for (const auto& body : cluster.take_figures()) {
    json j = json::parse(body, nullptr, false);
    StrategyReadingRow r;
    try {
      r.indicator = j.at("indicator").get<std::string>();
      r.observed_at_ms = j.at("observed_at_ms").get<std::int64_t>();
      r.value = j.at("value").get<double>();
      r.post = j.at("post").get<std::string>();
      r.agent = j.at("agent").get<std::string>();
      r.seq = j.at("seq").get<std::uint64_t>();
      r.received_at_ms = j.at("received_at_ms").get<std::int64_t>();
    } catch (const json::exception&) {
      log_.warn("cluster: a shared ministry figure does not read back; ignored: {}", body.substr(0, 200));
      continue;
    }
    auto& known = known_[key_of(r)];
    if (known == body) continue;
    known = body;
    store.keep_strategy_reading(std::move(r));
  }
  // What our own store committed since: shared unless known (ours, or merged from another).
  if (store.strategy_readings_committed() == checked_) return;
  checked_ = store.strategy_readings_committed();
  for (const auto& r : store.query_strategy_readings()) {
    auto body = body_of(r);
    auto& known = known_[key_of(r)];
    if (known == body) continue;
    known = body;
    cluster.share_figure(key_of(r), std::move(body));
  }
}

}  // namespace postwatch::aggregator
