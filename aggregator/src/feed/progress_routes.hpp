// /api/v1/targets, /api/v1/goals/{id}/progress and /api/v1/report: strategy progress from the
// ministry's readings in the store (docs/strategy-progress.md, "The API").
#pragma once

#include "feed/feed_sources.hpp"
#include "feed/http_helpers.hpp"

#include <optional>

namespace postwatch::aggregator {

class ProgressRoutes {
 public:
  using Report = decltype(FeedExtras::report);
  ProgressRoutes(BoardReads src, Report report) : src_(std::move(src)), report_(std::move(report)) {}
  HttpResponse targets(const HttpQuery& q) const;
  HttpResponse goal_progress(std::string_view id, const HttpQuery& q) const;
  // GET /api/v1/report (already authorised), answered later through `reply`.
  void report(const HttpRequest& req, std::string_view target, const HttpQuery& q, const HttpReply& reply) const;

 private:
  // Every target over the period the query asks for; the refusal when it asks for a bad one.
  std::optional<HttpResponse> assess_progress(const HttpQuery& q, StrategyProgress& out) const;

  BoardReads src_;
  Report report_;
};

}  // namespace postwatch::aggregator
