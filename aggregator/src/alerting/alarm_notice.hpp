// What the alerting stage knows of an alarm: the facts routes match on, and the alarm as the
// API shows it (alarm_json), which is what a receiver gets. The aggregator fills it in, so
// this stage depends on neither the board nor the feed.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace postwatch::aggregator {

struct AlarmNotice {
  std::uint64_t id = 0;
  std::string kind;                  // goal, post_silent, topic_mismatch, clock_offset, store_failing
  std::string level;                 // amber or red (what it is now)
  int goal = 0;                      // kind goal
  std::string pillar;                // kind goal: its goal's pillar
  std::vector<std::string> posts;    // the alarm's post and its causes' posts
  std::vector<std::string> regions;  // those posts' regions
  bool open = true;
  bool acknowledged = false;
  nlohmann::json alarm;   // alarm_json()
  bool silenced = false;  // a silence holds its notifications (silences/silence_book.hpp)
};

}  // namespace postwatch::aggregator
