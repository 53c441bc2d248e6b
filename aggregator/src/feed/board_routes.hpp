// /api/v1/goals (and /pillars), /api/v1/goals/{id}, /api/v1/threats and /api/v1/history: what the
// status board shows, now and as stored (docs/operations.md, "Goals and pillars").
#pragma once

#include "feed/feed_sources.hpp"
#include "feed/http_helpers.hpp"

namespace postwatch::aggregator {

class BoardRoutes {
 public:
  explicit BoardRoutes(BoardReads src) : src_(std::move(src)) {}
  HttpResponse goals() const;
  HttpResponse goal(std::string_view id) const;
  HttpResponse threats() const;
  HttpResponse history(const HttpQuery& q) const;

 private:
  BoardReads src_;
};

}  // namespace postwatch::aggregator
