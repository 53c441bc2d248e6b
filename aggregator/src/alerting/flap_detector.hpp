// Flapping (docs/alerting.md, "Flapping"): an alarm subject (a goal, or a post's alarm of one
// kind) whose alarms open more than `openings` times within `window_ms` flaps. Hysteresis and
// the minimum duration already keep most noise off the board; this catches what gets past them,
// so that people hear "goal 7 is flapping" once instead of raised, cleared, raised ... Pure and
// single-threaded, like the router that owns it.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <vector>

namespace postwatch::aggregator {

struct FlapConfig {
  unsigned openings = 4;             // more than this many within the window flaps; 0: never
  std::int64_t window_ms = 900'000;  // and a window without an opening ends it
};

class FlapDetector {
 public:
  explicit FlapDetector(FlapConfig config) : config_(config) {}

  enum class Opening { Steady, StartsFlapping, StillFlapping };
  // An alarm of `subject` opened at `now_ms`.
  Opening opened(const std::string& subject, std::int64_t now_ms);
  bool flapping(const std::string& subject) const;
  // How many openings of `subject` the window holds.
  std::size_t openings(const std::string& subject) const;
  // The subjects that stopped flapping by `now_ms` (no opening for a window), once each; and
  // forgets subjects that are steady and have no opening left in the window.
  std::vector<std::string> ended(std::int64_t now_ms);

  const FlapConfig& config() const { return config_; }

 private:
  struct Subject {
    std::deque<std::int64_t> opened_at_ms;  // within the window of the newest
    bool flapping = false;
  };
  FlapConfig config_;
  std::map<std::string, Subject> subjects_;
};

}  // namespace postwatch::aggregator
