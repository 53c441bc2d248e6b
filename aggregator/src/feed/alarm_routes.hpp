// /api/v1/alarms and POST /api/v1/alarms/{id}/ack (docs/operations.md, "Alarms").
#pragma once

#include "feed/access.hpp"
#include "feed/http_helpers.hpp"
#include "rollup/status_board.hpp"

#include <nlohmann/json_fwd.hpp>

#include <functional>

namespace postwatch::aggregator {

class AlarmRoutes {
 public:
  // mark_alarm: adds what the stages after the board know of an alarm (FeedSources);
  // alarm_changed: told of an acknowledgement. Either may be empty.
  AlarmRoutes(StatusBoard& board, std::function<void(const Alarm&, nlohmann::json&)> mark_alarm,
              std::function<void(const Alarm&)> alarm_changed)
      : board_(board), mark_alarm_(std::move(mark_alarm)), alarm_changed_(std::move(alarm_changed)) {}
  HttpResponse alarms(const HttpQuery& q) const;
  HttpResponse acknowledge(const HttpRequest& req, std::string_view id, const Principal* who);

 private:
  StatusBoard& board_;
  std::function<void(const Alarm&, nlohmann::json&)> mark_alarm_;
  std::function<void(const Alarm&)> alarm_changed_;
};

}  // namespace postwatch::aggregator
