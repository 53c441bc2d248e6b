// /api/v1/regions, /api/v1/posts, /api/v1/posts/{id} and /api/v1/posts/{id}/events: the posts,
// their statuses and readings, and what their agents sent (docs/operations.md, "Regions and posts").
#pragma once

#include "feed/feed_sources.hpp"
#include "feed/http_helpers.hpp"

#include <nlohmann/json_fwd.hpp>

namespace postwatch::aggregator {

class PostRoutes {
 public:
  explicit PostRoutes(BoardReads src) : src_(std::move(src)) {}
  HttpResponse regions(const HttpQuery& q) const;
  HttpResponse posts(const HttpQuery& q) const;
  HttpResponse post(std::string_view id) const;
  HttpResponse post_events(std::string_view id, const HttpQuery& q) const;  // feed/post_events.cpp

 private:
  // Which indicators feed goal `id` (numeric ones), for ?goal= filters.
  std::vector<bool> goal_mask(int goal) const;
  bool is_silent(std::uint32_t post) const;
  // Adds "maintenance": <silence id> to a post's JSON when a maintenance window covers it.
  void add_maintenance(nlohmann::json& post_json, std::uint32_t post) const;
  // Events of the post's agents that never arrived and were given up (the agents' seq gaps:
  // dropped by a full spool, or lost in a broker that forgot what it acknowledged).
  std::uint64_t events_lost(std::uint32_t post) const;

  BoardReads src_;
};

}  // namespace postwatch::aggregator
