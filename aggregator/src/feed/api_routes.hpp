// The operations-centre JSON API (/api/v1/...), rendered from the aggregator's
// state. Every response is JSON; errors carry {"error": {"status", "message"}}.
#pragma once

#include "feed/http_server.hpp"
#include "ingest/agent_presence.hpp"
#include "ingest/batch_ingest.hpp"
#include "postwatch/catalogue.hpp"
#include "rollup/indicator_state.hpp"
#include "rollup/status_board.hpp"

#include <functional>
#include <map>
#include <string>

namespace postwatch::aggregator {

class EventStore;

// What the API reads; all of it lives on the io_context thread.
struct FeedSources {
  const IndicatorCatalogue& catalogue;
  const IndicatorState& state;
  const BatchIngest& ingest;
  const AgentPresence& presence;
  StatusBoard& board;  // acknowledging an alarm changes it
  EventStore* store;   // history queries; may be null
  std::function<bool()> ready;
  std::function<void(const Alarm&)> alarm_changed;
};

class ApiRoutes {
 public:
  explicit ApiRoutes(FeedSources sources);
  HttpResponse handle(const HttpRequest& req);

 private:
  using Query = std::map<std::string, std::string, std::less<>>;
  HttpResponse goals();
  HttpResponse goal(std::string_view id);
  HttpResponse posts();
  HttpResponse post(std::string_view id);
  HttpResponse agents();
  HttpResponse stats();
  HttpResponse alarms(const Query& q);
  HttpResponse acknowledge(std::string_view id, const std::string& body);
  HttpResponse history(const Query& q);

  FeedSources src_;
};

}  // namespace postwatch::aggregator
